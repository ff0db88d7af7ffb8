//! ARM long-running operations as values: starting a PUT/PATCH yields a [`PendingOperation`]
//! that the reconciler can park in status and poll later, so no reconcile waits on Azure.
//!
//! The functions here are pure: they read a response's status, headers and body and say what
//! the operation's state is. Sending the polling requests is the ARM client's job.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::models::OperationStatus;
use super::operation::Operation;

/// How a pending operation is polled (ARM's async-operation contract).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", content = "url")]
pub enum PollingMethod {
    /// GET the `Azure-AsyncOperation` URL until `status` is terminal, then GET the resource.
    AzureAsyncOperation(String),
    /// GET the `Location` URL until it answers 200/204 instead of 202.
    Location(String),
    /// GET the resource itself until `properties.provisioningState` is terminal.
    ProvisioningState(String),
}

impl PollingMethod {
    /// The URL polled.
    #[must_use]
    pub fn url(&self) -> &str {
        match self {
            Self::AzureAsyncOperation(u) | Self::Location(u) | Self::ProvisioningState(u) => u,
        }
    }
}

/// A started ARM operation that has not finished. Serializable, so the reconciler can store it
/// in a status field and poll it in a later reconcile, even after a restart.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PendingOperation {
    /// What was started; stored as its name, e.g. `update media services account`.
    pub operation: Operation,
    /// Resource the operation changes.
    pub resource_id: String,
    /// api-version to read the resource with once done.
    pub api_version: String,
    /// How to poll.
    pub polling: PollingMethod,
    /// Seconds Azure asked us to wait before the next poll.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
}

impl PendingOperation {
    /// Suggested delay before polling.
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after_seconds.map(Duration::from_secs)
    }
}

/// What a PUT/PATCH/DELETE answered.
#[derive(Clone, Debug, PartialEq)]
pub enum Started<T> {
    /// Finished synchronously.
    Done(T),
    /// Accepted; poll later.
    Pending(PendingOperation),
}

/// What a poll found.
#[derive(Clone, Debug, PartialEq)]
pub enum PollOutcome<T> {
    /// Still running; poll again after the delay (Azure's `Retry-After` when given).
    InProgress {
        /// The delay Azure asked for.
        retry_after: Option<Duration>,
    },
    /// Finished successfully; the resource as it is now (`None` for deletes).
    Succeeded(Option<T>),
}

/// The state a single response shows, before any resource is fetched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PollStep {
    /// Still running.
    InProgress {
        /// The delay Azure asked for.
        retry_after: Option<Duration>,
    },
    /// Done; the final resource must still be read with a GET (async-operation polling).
    SucceededFetchResource,
    /// Done; this response's body (possibly empty) is the result.
    SucceededWithBody,
    /// Ended unsuccessfully.
    Failed {
        /// `Failed` or `Canceled`.
        status: String,
        /// Error code.
        code: String,
        /// Error message.
        message: String,
    },
}

/// Headers of interest on an ARM answer, lower-cased names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LroHeaders {
    /// `Azure-AsyncOperation`.
    pub azure_async_operation: Option<String>,
    /// `Location`.
    pub location: Option<String>,
    /// `Retry-After` in seconds.
    pub retry_after: Option<Duration>,
}

fn is_terminal_success(state: &str) -> bool {
    state.eq_ignore_ascii_case("Succeeded")
}

fn is_terminal_failure(state: &str) -> bool {
    state.eq_ignore_ascii_case("Failed")
        || state.eq_ignore_ascii_case("Canceled")
        || state.eq_ignore_ascii_case("Cancelled")
}

fn provisioning_state(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v.get("properties")?
        .get("provisioningState")?
        .as_str()
        .map(str::to_owned)
}

/// Interpret the first answer to a PUT/PATCH/DELETE.
///
/// Returns `None` when the operation finished synchronously (the body is the result), or the
/// polling method to park. Follows ARM's rules: `Azure-AsyncOperation` wins over `Location`;
/// a 201/200 without either is polled on the resource while `provisioningState` is not terminal.
#[must_use]
pub fn start(
    status: u16,
    headers: &LroHeaders,
    body: &[u8],
    resource_url: &str,
) -> Option<PollingMethod> {
    if let Some(url) = &headers.azure_async_operation {
        return Some(PollingMethod::AzureAsyncOperation(url.clone()));
    }
    if status == 202 {
        return Some(match &headers.location {
            Some(url) => PollingMethod::Location(url.clone()),
            None => PollingMethod::ProvisioningState(resource_url.to_owned()),
        });
    }
    match provisioning_state(body) {
        Some(state) if !is_terminal_success(&state) && !is_terminal_failure(&state) => {
            Some(PollingMethod::ProvisioningState(resource_url.to_owned()))
        }
        _ => None,
    }
}

/// Interpret one polling answer (already known to be a 2xx; errors are handled by the caller).
#[must_use]
pub fn step(method: &PollingMethod, status: u16, headers: &LroHeaders, body: &[u8]) -> PollStep {
    match method {
        PollingMethod::AzureAsyncOperation(_) => {
            let Ok(op) = serde_json::from_slice::<OperationStatus>(body) else {
                return PollStep::InProgress {
                    retry_after: headers.retry_after,
                };
            };
            if is_terminal_success(&op.status) {
                PollStep::SucceededFetchResource
            } else if is_terminal_failure(&op.status) {
                let err = op.error.unwrap_or_default();
                PollStep::Failed {
                    status: op.status,
                    code: err.code.unwrap_or_else(|| "OperationFailed".to_owned()),
                    message: err.message.unwrap_or_default(),
                }
            } else {
                PollStep::InProgress {
                    retry_after: headers.retry_after,
                }
            }
        }
        PollingMethod::Location(_) => {
            if status == 202 {
                PollStep::InProgress {
                    retry_after: headers.retry_after,
                }
            } else {
                PollStep::SucceededWithBody
            }
        }
        PollingMethod::ProvisioningState(_) => match provisioning_state(body) {
            Some(s) if is_terminal_failure(&s) => PollStep::Failed {
                status: s,
                code: "ProvisioningFailed".to_owned(),
                message: "provisioningState is not Succeeded".to_owned(),
            },
            Some(s) if !is_terminal_success(&s) => PollStep::InProgress {
                retry_after: headers.retry_after,
            },
            _ => PollStep::SucceededWithBody,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/azure-specs/specification/mediaservices/resource-manager/Microsoft.Media/Accounts/stable/2023-01-01/examples/"
    );

    fn example(name: &str) -> serde_json::Value {
        let path = format!("{SPECS}{name}");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("missing spec example {path}: {e}"));
        serde_json::from_str(&text).expect("example is JSON")
    }

    fn body(v: &serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(v).expect("json")
    }

    #[test]
    fn media_update_202_polls_the_azure_async_operation_url() {
        let ex = example("async-accounts-update.json");
        let r = &ex["responses"]["202"];
        let headers = LroHeaders {
            azure_async_operation: r["headers"]["azure-asyncoperation"]
                .as_str()
                .map(str::to_owned),
            location: r["headers"]["location"].as_str().map(str::to_owned),
            retry_after: None,
        };
        let method = start(
            202,
            &headers,
            &body(&r["body"]),
            "https://management.azure.com/x",
        )
        .expect("pending");
        assert!(
            matches!(&method, PollingMethod::AzureAsyncOperation(u) if u.contains("mediaServicesOperationStatuses")),
            "{method:?}"
        );
    }

    #[test]
    fn operation_status_examples_map_to_in_progress_succeeded_and_failed() {
        let method = PollingMethod::AzureAsyncOperation("u".into());
        let h = LroHeaders {
            retry_after: Some(Duration::from_secs(5)),
            ..LroHeaders::default()
        };
        let running = example("media-service-operation-status-by-id-non-terminal-state.json");
        assert_eq!(
            step(
                &method,
                200,
                &h,
                &body(&running["responses"]["200"]["body"])
            ),
            PollStep::InProgress {
                retry_after: Some(Duration::from_secs(5))
            }
        );
        let done = example("media-service-operation-status-by-id-terminal-state.json");
        assert_eq!(
            step(&method, 200, &h, &body(&done["responses"]["200"]["body"])),
            PollStep::SucceededFetchResource
        );
        let failed = example("media-service-operation-status-by-id-non-terminal-state-failed.json");
        assert_eq!(
            step(&method, 200, &h, &body(&failed["responses"]["200"]["body"])),
            PollStep::Failed {
                status: "Failed".into(),
                code: "BadRequest".into(),
                message: "Storage account cannot be accessed.".into()
            }
        );
    }

    #[test]
    fn synchronous_success_is_not_parked() {
        let ex = example("accounts-get-by-name.json");
        let b = body(&ex["responses"]["200"]["body"]);
        assert_eq!(start(200, &LroHeaders::default(), &b, "u"), None);
    }

    #[test]
    fn created_with_running_provisioning_state_polls_the_resource() {
        let b = br#"{"properties":{"provisioningState":"Updating"}}"#;
        assert_eq!(
            start(
                201,
                &LroHeaders::default(),
                b,
                "https://management.azure.com/r"
            ),
            Some(PollingMethod::ProvisioningState(
                "https://management.azure.com/r".into()
            ))
        );
        let m = PollingMethod::ProvisioningState("r".into());
        assert!(matches!(
            step(&m, 200, &LroHeaders::default(), b),
            PollStep::InProgress { .. }
        ));
        assert_eq!(
            step(
                &m,
                200,
                &LroHeaders::default(),
                br#"{"properties":{"provisioningState":"Succeeded"}}"#
            ),
            PollStep::SucceededWithBody
        );
        assert!(matches!(
            step(
                &m,
                200,
                &LroHeaders::default(),
                br#"{"properties":{"provisioningState":"Canceled"}}"#
            ),
            PollStep::Failed { .. }
        ));
    }

    #[test]
    fn location_polling_ends_when_the_answer_is_no_longer_202() {
        let h = LroHeaders {
            location: Some("https://management.azure.com/loc".into()),
            ..LroHeaders::default()
        };
        let m = start(202, &h, b"", "r").expect("pending");
        assert_eq!(
            m,
            PollingMethod::Location("https://management.azure.com/loc".into())
        );
        assert!(matches!(
            step(&m, 202, &h, b""),
            PollStep::InProgress { .. }
        ));
        assert_eq!(step(&m, 200, &h, b"{}"), PollStep::SucceededWithBody);
        assert_eq!(step(&m, 204, &h, b""), PollStep::SucceededWithBody);
    }

    #[test]
    fn pending_operation_round_trips_through_json_for_status_parking() {
        let p = PendingOperation {
            operation: Operation::MediaservicesUpdate,
            resource_id:
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Media/mediaservices/a"
                    .into(),
            api_version: "2023-01-01".into(),
            polling: PollingMethod::AzureAsyncOperation(
                "https://management.azure.com/op?api-version=2023-01-01".into(),
            ),
            retry_after_seconds: Some(10),
        };
        let json = serde_json::to_value(&p).expect("serializes");
        assert_eq!(json["polling"]["kind"], "AzureAsyncOperation");
        assert_eq!(json["operation"], "update media services account");
        let back: PendingOperation = serde_json::from_value(json).expect("deserializes");
        assert_eq!(back, p);
    }
}
