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
        hosts::release_many, hosts::labels, hosts::revoke, hosts::unknown_agents, audit::list, audit::verify, tokens::list, tokens::create,
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use cordon_proto::automation::{ApprovalStatus, DecisionStatus, DeliveryStatus};
    use cordon_proto::HostAction;
    use utoipa::OpenApi;

    /// The typed wire fields (issue 13) still describe the JSON sent: a closed set is a
    /// string enum of exactly its wire names; a field of an open set (a peer may send
    /// names this build does not know) is a plain string, as it was before it was typed.
    #[test]
    fn typed_fields_are_documented_as_the_strings_they_send() {
        let doc = super::ApiDoc::openapi().merge_from(cordon_automation::AutomationDoc::openapi());
        let v = serde_json::to_value(&doc).unwrap();
        let schemas = &v["components"]["schemas"];
        let names = |s: &str| -> Vec<String> {
            let e = schemas[s]["enum"]
                .as_array()
                .unwrap_or_else(|| panic!("{s}: {}", schemas[s]));
            e.iter().map(|x| x.as_str().unwrap().to_string()).collect()
        };
        let wire = |all: Vec<&str>| all.into_iter().map(String::from).collect::<Vec<_>>();
        assert_eq!(
            names("ApprovalStatus"),
            wire(ApprovalStatus::ALL.iter().map(|s| s.as_str()).collect())
        );
        assert_eq!(
            names("DecisionStatus"),
            wire(DecisionStatus::ALL.iter().map(|s| s.as_str()).collect())
        );
        assert_eq!(
            names("DeliveryStatus"),
            wire(DeliveryStatus::ALL.iter().map(|s| s.as_str()).collect())
        );
        assert_eq!(
            names("HostAction"),
            wire(HostAction::ALL.iter().map(|s| s.as_str()).collect())
        );
        let string = |schema: &str, field: &str| {
            let p = &schemas[schema]["properties"][field];
            let t = p["type"].clone();
            assert!(
                t == "string" || t == serde_json::json!(["string", "null"]),
                "{schema}.{field}: {p}"
            );
        };
        string("Host", "backend");
        string("StatusReport", "backend");
        string("ClaimInfo", "source");
        string("HostFlag", "kind");
        string("EventRecord", "status");
        string("RuleOutcome", "outcome");
        string("Delivery", "kind");
        let items = |schema: &str, field: &str| {
            let p = &schemas[schema]["properties"][field];
            assert_eq!(p["type"], "array", "{schema}.{field}: {p}");
            assert_eq!(p["items"]["type"], "string", "{schema}.{field}: {p}");
        };
        items("ActionResult", "other_claims");
        items("TargetSpec", "events");
    }
}
