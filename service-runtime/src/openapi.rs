//! What both services' OpenAPI documents share: the `admin` bearer scheme, the problem document's schema and the way
//! a problem answer is declared.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::Modify;

/// The `admin` security scheme: `Authorization: Bearer <ADMIN_TOKEN>`.
#[derive(Debug)]
pub struct AdminBearer;

impl Modify for AdminBearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The schema of [`crate::problem::Problem`] as both services answer it (the extension members are those either
/// service uses; each appears only where it applies).
#[derive(Debug, utoipa::ToSchema)]
#[schema(as = Problem)]
#[allow(dead_code)]
pub struct ProblemDoc {
    /// `/problems/<kind>` (the kinds are listed in the README).
    #[schema(rename = "type")]
    kind: String,
    title: String,
    status: u16,
    detail: String,
    /// On a `validation` problem: every broken rule of a rejected command, by JSON path.
    errors: Option<Vec<FieldErrorDoc>>,
    /// On a command's 409: the order's version now.
    #[schema(rename = "currentVersion")]
    current_version: Option<i64>,
    /// On a command's 409: the order's status now.
    #[schema(rename = "orderStatus")]
    order_status: Option<String>,
}

/// One broken rule of a rejected command.
#[derive(Debug, utoipa::ToSchema)]
#[schema(as = FieldError)]
#[allow(dead_code)]
pub struct FieldErrorDoc {
    field: String,
    message: String,
}

/// Declares a documented error answer `$name`: an `application/problem+json` body of the [`ProblemDoc`] schema,
/// with `$description`.
#[macro_export]
macro_rules! problem_response {
    ($name:ident, $description:literal) => {
        #[derive(Debug, ::utoipa::ToResponse)]
        #[response(description = $description, content_type = "application/problem+json")]
        #[allow(dead_code)]
        pub struct $name($crate::openapi::ProblemDoc);
    };
}
