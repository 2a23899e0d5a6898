//! HTTP plumbing shared by every area: problems, extractors, idempotency,
//! pagination, health and the OpenAPI document.

pub mod extract;
pub mod health;
pub mod idempotency;
pub mod openapi;
pub mod pagination;
pub mod problem;
pub mod write;

pub use problem::{ApiError, FieldError, ProblemCode};
pub use write::{NoBody, Write, WriteOp};
