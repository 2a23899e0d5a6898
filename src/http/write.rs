//! One extractor for every write: the caller, the body, and what makes the
//! write safe to retry and accountable — its `Idempotency-Key`, the request's
//! fingerprint and the audit context.
//!
//! A handler takes `Write<B>`, checks the caller's role, and hands its effect
//! to [`WriteOp::run`]: the effect, its audit record and (with a key) its stored
//! answer commit in one transaction. The preamble every write handler used to
//! repeat lives here once.

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use diesel_async::AsyncPgConnection;
use futures_util::future::LocalBoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::extract::JsonBody;
use super::idempotency::{self, IdempotencyKey};
use super::problem::ApiError;
use crate::audit::WriteContext;
use crate::auth::Principal;
use crate::auth::principal::TokenPrincipal;
use crate::state::AppState;

/// A request body a write can carry: what it parsed to, and the bytes the
/// request's fingerprint covers.
pub trait WriteBody: FromRequest<Error = ApiError> + 'static {
    fn raw(&self) -> &[u8];
}

impl<T: DeserializeOwned + 'static> WriteBody for JsonBody<T> {
    fn raw(&self) -> &[u8] {
        &self.raw
    }
}

impl WriteBody for super::extract::CsvBody {
    fn raw(&self) -> &[u8] {
        &self.0
    }
}

/// The body of a write that takes none (`POST /v1/orders/{id}/cancel`): any
/// bytes sent are ignored, as they always were, and not fingerprinted.
pub struct NoBody;

impl FromRequest for NoBody {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(_: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(Ok(NoBody))
    }
}

impl WriteBody for NoBody {
    fn raw(&self) -> &[u8] {
        b""
    }
}

/// How a write learns its caller: [`Principal`] checks the token's user in
/// the database before the handler runs; [`TokenPrincipal`] only checks the
/// token, for a write that checks the user in its own transaction.
pub trait Caller: FromRequest<Error = ApiError> + 'static {
    fn principal(&self) -> &Principal;
}

impl Caller for Principal {
    fn principal(&self) -> &Principal {
        self
    }
}

impl Caller for TokenPrincipal {
    fn principal(&self) -> &Principal {
        &self.0
    }
}

/// An authenticated write: the caller, its body, and the operation that runs
/// its effect.
pub struct Write<B = NoBody, P = Principal> {
    pub principal: P,
    pub body: B,
    pub op: WriteOp,
}

/// Everything a write needs beyond its caller and body.
pub struct WriteOp {
    state: web::Data<AppState>,
    ctx: WriteContext,
    key: IdempotencyKey,
    fingerprint: Vec<u8>,
}

impl WriteOp {
    /// A write whose caller and key were read some other way than the API's
    /// headers: the console's forms carry their session in a cookie and their
    /// key in a hidden field.
    pub fn new(state: web::Data<AppState>, ctx: WriteContext, key: IdempotencyKey, fingerprint: Vec<u8>) -> Self {
        WriteOp { state, ctx, key, fingerprint }
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Runs `effect` in one transaction with its audit record, at most once per
    /// idempotency key, and answers `status` with its JSON (or the first answer
    /// to the key).
    pub async fn run<T, F>(self, status: StatusCode, effect: F) -> Result<HttpResponse, ApiError>
    where
        T: Serialize,
        F: AsyncFnOnce(&mut AsyncPgConnection) -> Result<T, ApiError>,
    {
        idempotency::run(&self.state.pool, &self.ctx, self.key, self.fingerprint, status, effect).await
    }

    /// Like [`WriteOp::run`], answering the stored JSON answer (and whether it
    /// is a replay) instead of a response: what the console renders a page from.
    pub async fn run_answer<T, F>(self, status: StatusCode, effect: F) -> Result<idempotency::Answer, ApiError>
    where
        T: Serialize,
        F: AsyncFnOnce(&mut AsyncPgConnection) -> Result<T, ApiError>,
    {
        idempotency::run_answer(&self.state.pool, &self.ctx, self.key, self.fingerprint, status, effect).await
    }

    /// The write as one of a batch (the order group commit runs it with its
    /// neighbours, with the same idempotency and audit as [`WriteOp::run`]).
    pub fn into_batched(self) -> idempotency::BatchedWrite {
        idempotency::BatchedWrite { ctx: self.ctx, key: self.key.0, fingerprint: self.fingerprint }
    }

    /// Like [`WriteOp::run`], for an effect that commits in transactions of its
    /// own (see [`idempotency::run_in_own_transactions`]).
    pub async fn run_in_own_transactions<T, F>(self, status: StatusCode, effect: F) -> Result<HttpResponse, ApiError>
    where
        T: Serialize,
        F: AsyncFnOnce() -> Result<T, ApiError>,
    {
        idempotency::run_in_own_transactions(&self.state.pool, &self.ctx, self.key, self.fingerprint, status, effect)
            .await
    }
}

impl<B: WriteBody, P: Caller> FromRequest for Write<B, P> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let principal = P::from_request(req, payload);
        let key = IdempotencyKey::from_request(req, payload).into_inner();
        let body = B::from_request(req, payload);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let req = req.clone();
        Box::pin(async move {
            // Who is asking comes first: an anonymous caller learns nothing
            // about what its body would have done.
            let principal = principal.await?;
            let key = key?;
            let body = body.await?;
            let state = state.ok_or_else(|| ApiError::internal(std::io::Error::other("no application state")))?;
            let fingerprint = idempotency::fingerprint(&req, body.raw());
            let ctx = WriteContext::new(&req, Some(principal.principal()));
            Ok(Write { principal, body, op: WriteOp { state, ctx, key, fingerprint } })
        })
    }
}
