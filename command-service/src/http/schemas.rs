//! The error answers the OpenAPI document names: each an `application/problem+json` body of the one problem
//! schema, with what it means on this service. The handlers name these in their annotations; [`super::openapi`]
//! assembles the document.

use service_runtime::problem_response;

problem_response!(BadRequest, "The request is malformed or breaks a rule; `errors` names each field.");
problem_response!(NotFound, "No such order (or one of another customer, which a customer token cannot see).");
problem_response!(Conflict, "Stale `expectedVersion`, or a transition the order's status does not allow.");
problem_response!(TooLarge, "The body is larger than 64 KiB.");
problem_response!(WrongMediaType, "The body is not `application/json`.");
problem_response!(KeyReused, "The `Idempotency-Key` was used with a different request.");
problem_response!(Unavailable, "The order store is unavailable; retry after `Retry-After` seconds.");
problem_response!(Unauthorized, "The admin token is missing or wrong, or (`AUTH_MODE=jwt`) the bearer token is.");
pub use service_runtime::openapi::Unauthenticated;
problem_response!(Forbidden, "The token may not do this: another customer named, or a scope it lacks.");
problem_response!(TooManyRequests, "This client is over its command rate; retry after `Retry-After` seconds.");
