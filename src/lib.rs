#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

pub mod cache;
pub mod sse;

#[cfg(feature = "client")]
pub mod body;
#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "client")]
pub mod error;
#[cfg(feature = "client")]
pub mod layers;
#[cfg(feature = "client")]
pub mod transport;

#[cfg(feature = "client")]
pub mod agents;
#[cfg(feature = "client")]
pub mod chat;
#[cfg(feature = "client")]
pub mod classifiers;
#[cfg(feature = "client")]
pub mod common;
#[cfg(feature = "client")]
pub mod embeddings;
#[cfg(feature = "client")]
pub mod fim;
#[cfg(feature = "client")]
pub mod models;
#[cfg(feature = "client")]
pub mod ocr;

#[cfg(feature = "server")]
pub mod server;

#[cfg(feature = "client")]
pub use body::Body;
#[cfg(feature = "client")]
pub use client::{ApiResponse, Client, ClientBuilder};
#[cfg(feature = "client")]
pub use error::Error;

/// A boxed, type-erased error, the error type of every service in the stack.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
