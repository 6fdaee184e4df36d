//! Extractors whose rejection is the APIs' own 400 problem: a query string ([`Params`]), a path's one segment
//! ([`Segment`]) and an order id in the path ([`OrderId`]). A handler takes them as they are, or as
//! `Result<_, BadInput>` where a check must come before them (an admin endpoint tells a caller without the right
//! nothing, not even that its query string is malformed); each service's error takes a [`BadInput`] in (`From`).

use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::problem::{kind_of_status, ApiProblem};

/// A request the path or the query string makes malformed: 400, with what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadInput(pub String);

impl ApiProblem for BadInput {
    fn status(&self) -> StatusCode {
        StatusCode::BAD_REQUEST
    }

    fn kind(&self) -> &'static str {
        kind_of_status(StatusCode::BAD_REQUEST)
    }

    fn detail(&self) -> String {
        self.0.clone()
    }
}

impl IntoResponse for BadInput {
    fn into_response(self) -> Response {
        self.problem().into_response()
    }
}

/// The query string, read into `T`.
#[derive(Debug, Clone)]
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = BadInput;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(params)) => Ok(Self(params)),
            Err(rejection) => Err(BadInput(rejection.body_text())),
        }
    }
}

/// The one segment a route's path captures (a customer id, a projection's name), as sent.
#[derive(Debug, Clone)]
pub struct Segment(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Segment {
    type Rejection = BadInput;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(segment)) => Ok(Self(segment)),
            Err(rejection) => Err(BadInput(rejection.body_text())),
        }
    }
}

/// The order id a route's path captures: a UUID, or 400.
#[derive(Debug, Clone, Copy)]
pub struct OrderId(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for OrderId {
    type Rejection = BadInput;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Segment(raw) = Segment::from_request_parts(parts, state).await?;
        Uuid::parse_str(&raw).map(Self).map_err(|_| BadInput("the order id must be a UUID".to_owned()))
    }
}
