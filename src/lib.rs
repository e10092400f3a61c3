#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

pub mod body;
pub mod cache;
pub mod cacheable;
pub mod client;
pub mod error;
pub mod layers;
pub mod multipart;
pub mod pagination;
pub mod sse;
pub mod transport;

pub mod agents;
pub mod agents_api;
pub mod audio;
pub mod batch;
mod beta;
pub mod chat;
pub mod classifiers;
pub mod common;
pub mod conversations;
pub mod embeddings;
pub mod files;
pub mod fim;
pub mod libraries;
pub mod models;
pub mod ocr;
pub mod prompts;
mod raw;
#[cfg(feature = "schemars")]
pub mod structured;

#[cfg(feature = "server")]
pub mod server;

#[cfg(feature = "testing")]
pub mod testing;

pub use body::Body;
pub use cache::CacheStatus;
pub use client::{ApiResponse, Client, ClientBuilder, RequestOptions};
pub use error::Error;

/// A boxed, type-erased error, the error type of every service in the stack.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
