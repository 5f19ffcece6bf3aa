//! Typed calls of the automation API (`/v1/rules`, `/v1/events`, `/v1/approvals`,
//! `/v1/automation/settings`, `/v1/notifications/…`), over the wire types of
//! [`cordon_proto::automation`]. Paths are built by [`crate::build_url`] (each segment
//! percent-encoded by `url`), so a rule name with `/`, `?` or spaces stays one segment.

use cordon_proto::automation::{
    ApprovalList, DecisionRequest, DecisionResponse, DeliveryList, EventIn, EventList, EventRecord, IntakeResponse,
    RuleList, RuleRecord, RuleSpec, Settings, SettingsPatch, Target, TargetList, TargetSpec,
};
use reqwest::Method;

use crate::{ApiClient, ClientError};

/// An approval decision: which endpoint a [`DecisionRequest`] goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// `POST /v1/approvals/approve`.
    Approve,
    /// `POST /v1/approvals/deny`.
    Deny,
}

impl ApiClient {
    /// `GET /v1/rules` (viewer).
    ///
    /// # Errors
    /// As [`ApiClient::json`].
    pub async fn rules(&self) -> Result<RuleList, ClientError> {
        self.json(Method::GET, &["v1", "rules"], &[], None::<&()>).await
    }

    /// `GET /v1/rules/{name}`.
    ///
    /// # Errors
    /// As [`ApiClient::json`]; an unknown rule is [`ClientError::Refused`] with 404.
    pub async fn rule(&self, name: &str) -> Result<RuleRecord, ClientError> {
        self.json(Method::GET, &["v1", "rules", name], &[], None::<&()>).await
    }

    /// `PUT /v1/rules/{name}`: creates or replaces the rule `name` (admin). `spec` is any
    /// body the server reads as a [`RuleSpec`] (a rule file's JSON is sent as written).
    ///
    /// # Errors
    /// As [`ApiClient::json`]; a spec the server refuses is [`ClientError::Refused`] with 400.
    pub async fn put_rule<B: serde::Serialize + ?Sized>(
        &self,
        name: &str,
        spec: &B,
    ) -> Result<RuleRecord, ClientError> {
        self.json(Method::PUT, &["v1", "rules", name], &[], Some(spec)).await
    }

    /// `PUT /v1/rules/{name}` with a typed [`RuleSpec`] (its own `name` is the path's).
    ///
    /// # Errors
    /// As [`ApiClient::put_rule`].
    pub async fn put_rule_spec(&self, spec: &RuleSpec) -> Result<RuleRecord, ClientError> {
        self.put_rule(&spec.name, spec).await
    }

    /// `DELETE /v1/rules/{name}` (admin).
    ///
    /// # Errors
    /// As [`ApiClient::text`].
    pub async fn delete_rule(&self, name: &str) -> Result<(), ClientError> {
        self.text(Method::DELETE, &["v1", "rules", name], &[], None::<&()>)
            .await
            .map(drop)
    }

    /// `GET /v1/automation/settings`.
    ///
    /// # Errors
    /// As [`ApiClient::json`].
    pub async fn automation_settings(&self) -> Result<Settings, ClientError> {
        self.json(Method::GET, &["v1", "automation", "settings"], &[], None::<&()>)
            .await
    }

    /// `PUT /v1/automation/settings`: changes the fields `patch` sets (admin); returns
    /// the settings now in force.
    ///
    /// # Errors
    /// As [`ApiClient::json`].
    pub async fn put_automation_settings(&self, patch: &SettingsPatch) -> Result<Settings, ClientError> {
        self.json(Method::PUT, &["v1", "automation", "settings"], &[], Some(patch))
            .await
    }

    /// `GET /v1/events`: the newest `limit` events, optionally of one status or host.
    ///
    /// # Errors
    /// As [`ApiClient::json`].
    pub async fn events(&self, limit: i64, status: Option<&str>, host: Option<&str>) -> Result<EventList, ClientError> {
        let limit = limit.to_string();
        let q = [("limit", Some(limit.as_str())), ("status", status), ("host", host)];
        self.json(Method::GET, &["v1", "events"], &q, None::<&()>).await
    }

    /// `GET /v1/events/{id}`.
    ///
    /// # Errors
    /// As [`ApiClient::json`]; an unknown id is [`ClientError::Refused`] with 404.
    pub async fn event(&self, id: &str) -> Result<EventRecord, ClientError> {
        self.json(Method::GET, &["v1", "events", id], &[], None::<&()>).await
    }

    /// `POST /v1/events`: hands one detection to the rules.
    ///
    /// # Errors
    /// As [`ApiClient::json`].
    pub async fn send_event(&self, event: &EventIn) -> Result<IntakeResponse, ClientError> {
        self.json(Method::POST, &["v1", "events"], &[], Some(event)).await
    }

    /// `GET /v1/approvals?status=…`.
    ///
    /// # Errors
    /// As [`ApiClient::json`]; an unknown status is [`ClientError::Refused`] with 400.
    pub async fn approvals(&self, status: &str) -> Result<ApprovalList, ClientError> {
        self.json(
            Method::GET,
            &["v1", "approvals"],
            &[("status", Some(status))],
            None::<&()>,
        )
        .await
    }

    /// `POST /v1/approvals/approve` or `/deny`.
    ///
    /// # Errors
    /// As [`ApiClient::json`].
    pub async fn decide(&self, decision: Decision, req: &DecisionRequest) -> Result<DecisionResponse, ClientError> {
        let verb = match decision {
            Decision::Approve => "approve",
            Decision::Deny => "deny",
        };
        self.json(Method::POST, &["v1", "approvals", verb], &[], Some(req))
            .await
    }

    /// `GET /v1/notifications/targets`.
    ///
    /// # Errors
    /// As [`ApiClient::json`].
    pub async fn notify_targets(&self) -> Result<TargetList, ClientError> {
        self.json(Method::GET, &["v1", "notifications", "targets"], &[], None::<&()>)
            .await
    }

    /// `POST /v1/notifications/targets` (admin).
    ///
    /// # Errors
    /// As [`ApiClient::json`]; a name in use is [`ClientError::Refused`] with 409.
    pub async fn add_notify_target(&self, spec: &TargetSpec) -> Result<Target, ClientError> {
        self.json(Method::POST, &["v1", "notifications", "targets"], &[], Some(spec))
            .await
    }

    /// `DELETE /v1/notifications/targets/{id}` (admin).
    ///
    /// # Errors
    /// As [`ApiClient::text`].
    pub async fn remove_notify_target(&self, id: i64) -> Result<(), ClientError> {
        let id = id.to_string();
        self.text(
            Method::DELETE,
            &["v1", "notifications", "targets", &id],
            &[],
            None::<&()>,
        )
        .await
        .map(drop)
    }

    /// `GET /v1/notifications/deliveries`, optionally of one status.
    ///
    /// # Errors
    /// As [`ApiClient::json`].
    pub async fn notify_deliveries(&self, status: Option<&str>) -> Result<DeliveryList, ClientError> {
        self.json(
            Method::GET,
            &["v1", "notifications", "deliveries"],
            &[("status", status)],
            None::<&()>,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    /// The fault kind: automation paths built by hand (`format!("/v1/rules/{name}")`), so
    /// a rule name with `/`, `?`, `#` or a space split the path or became a query. Each
    /// name is one percent-encoded segment.
    #[test]
    fn automation_paths_encode_each_name_as_one_segment() {
        let base = crate::parse_base("https://cordon.example:8443/").unwrap();
        let url = crate::build_url(&base, &["v1", "rules", "db/prod ?#x"], &[]);
        assert_eq!(url.as_str(), "https://cordon.example:8443/v1/rules/db%2Fprod%20%3F%23x");
        assert_eq!(url.path_segments().unwrap().count(), 3);
        let url = crate::build_url(&base, &["v1", "events"], &[("limit", Some("5")), ("host", Some("a&b"))]);
        assert_eq!(url.query(), Some("limit=5&host=a%26b"));
    }
}
