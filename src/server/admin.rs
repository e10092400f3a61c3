//! The administration commands: `stats`, `purge` and `inspect` on an engine.

use super::ServerError;
use super::cli::{EngineArgs, InspectArgs, PurgeArgs};

pub(crate) async fn stats(_args: &EngineArgs) -> Result<(), ServerError> {
    Err(ServerError::Config("stats: not yet available".into()))
}
pub(crate) async fn purge(_args: &PurgeArgs) -> Result<(), ServerError> {
    Err(ServerError::Config("purge: not yet available".into()))
}
pub(crate) async fn inspect(_args: &InspectArgs) -> Result<(), ServerError> {
    Err(ServerError::Config("inspect: not yet available".into()))
}
