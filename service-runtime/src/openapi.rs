//! What both services' OpenAPI documents share: the bearer schemes and the way a problem answer is declared
//! (its schema is the real [`crate::problem::Problem`]).

use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::Ref;
use utoipa::Modify;

use crate::problem::PROBLEM_JSON;

/// The security schemes: `admin`, `Authorization: Bearer <ADMIN_TOKEN>` (`AUTH_MODE=none`), and `bearer`, a JWT
/// from the identity provider (`AUTH_MODE=jwt`).
#[derive(Debug)]
pub struct BearerSchemes;

impl Modify for BearerSchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

/// The description of an error answer: an `application/problem+json` body of the [`crate::problem::Problem`] schema.
pub fn problem_answer(description: &str) -> Response {
    let body = ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build();
    ResponseBuilder::new().description(description).content(PROBLEM_JSON, body).build()
}

/// Declares a documented error answer `$name` for `responses(..)` in a path: [`problem_answer`] with
/// `$description`. The type is only a name for the answer, so it has no values.
#[macro_export]
macro_rules! problem_response {
    ($name:ident, $description:literal) => {
        #[derive(Debug)]
        pub enum $name {}

        impl<'s> ::utoipa::ToResponse<'s> for $name {
            fn response() -> (&'s str, ::utoipa::openapi::RefOr<::utoipa::openapi::response::Response>) {
                (stringify!($name), $crate::openapi::problem_answer($description).into())
            }
        }
    };
}

crate::problem_response!(
    Unauthenticated,
    "`AUTH_MODE=jwt`: the bearer token (or a view-stream ticket) is missing or refused; `WWW-Authenticate` says why."
);
