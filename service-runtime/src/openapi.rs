//! What both services' OpenAPI documents share: the `admin` bearer scheme and the way a problem answer is declared.

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

/// Declares a documented error answer `$name`: an `application/problem+json` body of the calling module's
/// `ProblemDoc` schema, with `$description`.
#[macro_export]
macro_rules! problem_response {
    ($name:ident, $description:literal) => {
        #[derive(Debug, ::utoipa::ToResponse)]
        #[response(description = $description, content_type = "application/problem+json")]
        #[allow(dead_code)]
        pub struct $name(ProblemDoc);
    };
}
