#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

pub mod body;
pub mod cache;
pub mod client;
pub mod error;
pub mod layers;
pub mod sse;
pub mod transport;

pub mod agents;
pub mod chat;
pub mod classifiers;
pub mod common;
pub mod embeddings;
pub mod fim;
pub mod models;
pub mod ocr;

#[cfg(feature = "server")]
pub mod server;

#[cfg(feature = "testing")]
pub mod testing;

pub use body::Body;
pub use client::{ApiResponse, Client, ClientBuilder};
pub use error::Error;

/// A boxed, type-erased error, the error type of every service in the stack.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
