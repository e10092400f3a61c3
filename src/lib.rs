#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

pub mod cache;
pub mod sse;

#[cfg(feature = "client")]
pub mod body;
#[cfg(feature = "client")]
pub mod cacheable;
#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "client")]
pub mod error;
#[cfg(feature = "client")]
pub mod layers;
#[cfg(feature = "client")]
pub mod multipart;
#[cfg(feature = "client")]
pub mod pagination;
#[cfg(feature = "client")]
pub mod transport;

#[cfg(feature = "client")]
pub mod agents;
#[cfg(feature = "client")]
pub mod agents_api;
#[cfg(feature = "client")]
pub mod audio;
#[cfg(feature = "client")]
pub mod batch;
#[cfg(feature = "client")]
mod beta;
#[cfg(feature = "client")]
pub mod chat;
#[cfg(feature = "client")]
pub mod classifiers;
#[cfg(feature = "client")]
pub mod common;
#[cfg(feature = "client")]
pub mod conversations;
#[cfg(feature = "client")]
pub mod embeddings;
#[cfg(feature = "client")]
pub mod files;
#[cfg(feature = "client")]
pub mod fim;
#[cfg(feature = "client")]
pub mod libraries;
#[cfg(feature = "client")]
pub mod models;
#[cfg(feature = "client")]
pub mod ocr;
#[cfg(feature = "client")]
pub mod prompts;
#[cfg(feature = "client")]
mod raw;
#[cfg(feature = "schemars")]
pub mod structured;

#[cfg(feature = "server")]
pub mod server;

#[cfg(feature = "testing")]
pub mod testing;

#[cfg(feature = "client")]
pub use body::Body;
pub use cache::CacheStatus;
#[cfg(feature = "client")]
pub use client::{ApiResponse, Client, ClientBuilder, RequestOptions};
#[cfg(feature = "client")]
pub use error::Error;

/// A boxed, type-erased error, the error type of every service in the stack.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
