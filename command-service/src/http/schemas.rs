//! The shapes the OpenAPI document describes: the problem document and its responses, and what the handlers
//! answer or take beside their own types. The handlers name these in their annotations; [`super::openapi`]
//! assembles the document.

use service_runtime::problem_response;
use utoipa::IntoParams;

/// The optional `Idempotency-Key` header of every command.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct IdempotencyKey {
    /// Retrying with the same key and body answers the first answer again; a different body is a 422.
    #[param(rename = "Idempotency-Key", pattern = r"^[!-~]{1,255}$")]
    idempotency_key: Option<String>,
}

problem_response!(BadRequest, "The request is malformed or breaks a rule; `errors` names each field.");
problem_response!(NotFound, "No such order.");
problem_response!(Conflict, "Stale `expectedVersion`, or a transition the order's status does not allow.");
problem_response!(TooLarge, "The body is larger than 64 KiB.");
problem_response!(WrongMediaType, "The body is not `application/json`.");
problem_response!(KeyReused, "The `Idempotency-Key` was used with a different request.");
problem_response!(Unavailable, "The order store is unavailable; retry after `Retry-After` seconds.");
problem_response!(Unauthorized, "The admin token is missing or wrong.");
