//! The OpenAPI document served at `/v1/openapi.json`.

use axum::Json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::api::{agent, audit, enroll, hosts, tokens};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// The REST API's OpenAPI document (the automation API's is merged in by [`serve`]).
#[derive(OpenApi)]
#[openapi(
    info(title = "Cordon API", version = "1", description = "Network quarantine: hosts, quarantine/release, audit, tokens, agent sync (mutual TLS)."),
    paths(
        hosts::list, hosts::get_host, hosts::quarantine_one, hosts::release_one, hosts::retry_one, hosts::quarantine_many,
        hosts::release_many, hosts::labels, hosts::revoke, audit::list, audit::verify, tokens::list, tokens::create,
        tokens::revoke, tokens::create_enroll, enroll::ca_pem, enroll::enroll, agent::desired, agent::status
    ),
    components(schemas(cordon_proto::ErrorBody, cordon_proto::HostState, cordon_proto::Role, cordon_proto::AgentState)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

/// `GET /v1/openapi.json`: the whole API's OpenAPI document.
pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi().merge_from(cordon_automation::AutomationDoc::openapi()))
}
