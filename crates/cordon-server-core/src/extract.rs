//! Extractors whose rejections are JSON `{error, detail}` like every other error.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Json;
use serde::de::DeserializeOwned;

use crate::ApiError;

/// JSON body; malformed JSON, wrong types or a wrong content type are 400, a body over
/// [`crate::limits::MAX_BODY_BYTES`] is 413.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(e) => Err(json_rejection(e)),
        }
    }
}

fn json_rejection(e: JsonRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("request body is larger than {} bytes", crate::limits::MAX_BODY_BYTES),
        );
    }
    let error = match &e {
        JsonRejection::MissingJsonContentType(_) => "invalid_json",
        JsonRejection::JsonSyntaxError(_) => "invalid_json",
        JsonRejection::JsonDataError(_) => "invalid_input",
        _ => "invalid_json",
    };
    ApiError::new(StatusCode::BAD_REQUEST, error, e.body_text())
}

/// Query string; bad values are 400.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(ApiQuery(v)),
            Err(e) => Err(query_rejection(e)),
        }
    }
}

fn query_rejection(e: QueryRejection) -> ApiError {
    ApiError::invalid(e.body_text())
}
