//! A long-running Azure operation parked in status between passes: what status records of it,
//! and reading it back. A pass that starts an operation never waits on it; the next pass polls it
//! from what is recorded here, even in a new process.
//!
//! The stored shape is a wire format: objects written by earlier versions must resume polling,
//! so names only ever gain values (see [`crate::azure::Operation::as_str`] and
//! [`PollingMethodKind`]). This module does no I/O.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::azure::PendingOperation;
use crate::azure::lro::PollingMethod;
use crate::crd::account::{PendingOperationStatus, PollingMethodKind};

use super::prereqs::Area;

/// What status records of an operation this pass started and parked, for `area`.
#[must_use]
pub fn to_status(op: &PendingOperation, area: Area, now: Timestamp) -> PendingOperationStatus {
    let method = match &op.polling {
        PollingMethod::AzureAsyncOperation(_) => PollingMethodKind::AzureAsyncOperation,
        PollingMethod::Location(_) => PollingMethodKind::Location,
        PollingMethod::ProvisioningState(_) => PollingMethodKind::ProvisioningState,
    };
    PendingOperationStatus {
        operation: op.operation,
        condition: area.condition_type().to_owned(),
        resource_id: op.resource_id.clone(),
        api_version: op.api_version.clone(),
        polling_method: method,
        polling_url: op.polling.url().to_owned(),
        started_at: Time(now),
    }
}

/// The operation a status records as parked; `None` for a polling method this version cannot
/// read (observing again is always safe).
#[must_use]
pub fn from_status(s: &PendingOperationStatus) -> Option<PendingOperation> {
    let url = s.polling_url.clone();
    let polling = match &s.polling_method {
        PollingMethodKind::AzureAsyncOperation => PollingMethod::AzureAsyncOperation(url),
        PollingMethodKind::Location => PollingMethod::Location(url),
        PollingMethodKind::ProvisioningState => PollingMethod::ProvisioningState(url),
        PollingMethodKind::Unknown(_) => return None,
    };
    Some(PendingOperation {
        operation: s.operation,
        resource_id: s.resource_id.clone(),
        api_version: s.api_version.clone(),
        polling,
        retry_after_seconds: None,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::azure::Operation;
    use crate::crd::account::MediaServicesAccountStatus;

    const MEDIA: &str =
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Media/mediaservices/a";
    const OP_URL: &str = "https://management.azure.com/subscriptions/s/providers/Microsoft.Media/locations/westus/mediaServicesOperationStatuses/1?api-version=2023-01-01";

    /// A status as the previous version wrote it: every field a plain string, exactly as its
    /// `to_status` spelled them, around other status fields.
    fn stored_status(method: &str, operation: &str) -> serde_json::Value {
        json!({
            "observedGeneration": 3,
            "pendingOperation": {
                "operation": operation,
                "condition": "IdentityReady",
                "resourceId": MEDIA,
                "apiVersion": "2023-01-01",
                "pollingMethod": method,
                "pollingUrl": OP_URL,
                "startedAt": "2026-12-01T10:00:00Z",
            },
        })
    }

    fn parked(v: serde_json::Value) -> PendingOperationStatus {
        serde_json::from_value::<MediaServicesAccountStatus>(v)
            .expect("a stored status deserializes")
            .pending_operation
            .expect("parked")
    }

    /// Objects parked by the previous version resume polling the same operation after an
    /// upgrade, for each polling method it wrote.
    #[test]
    fn an_operation_parked_by_the_previous_version_resumes_unchanged() {
        for (method, polling) in [
            (
                "AzureAsyncOperation",
                PollingMethod::AzureAsyncOperation(OP_URL.into()),
            ),
            ("Location", PollingMethod::Location(OP_URL.into())),
            (
                "ProvisioningState",
                PollingMethod::ProvisioningState(OP_URL.into()),
            ),
        ] {
            let stored = stored_status(method, "update media services account");
            let status = parked(stored.clone());
            let expected = PendingOperation {
                operation: Operation::MediaservicesUpdate,
                resource_id: MEDIA.into(),
                api_version: "2023-01-01".into(),
                polling,
                retry_after_seconds: None,
            };
            assert_eq!(from_status(&status).as_ref(), Some(&expected), "{method}");
            // Writing it back gives the very JSON the previous version wrote.
            let now: Timestamp = "2026-12-01T10:00:00Z".parse().expect("time");
            let rewritten = to_status(&expected, Area::Identity, now);
            assert_eq!(rewritten, status, "{method}");
            assert_eq!(
                serde_json::to_value(&rewritten).expect("serializes"),
                stored["pendingOperation"],
                "{method}"
            );
        }
    }

    /// A polling method this version does not know drops the parked operation (the next pass
    /// observes afresh), without failing the rest of the status; the value itself is kept as
    /// stored.
    #[test]
    fn an_unknown_polling_method_drops_the_parked_operation_only() {
        let status: MediaServicesAccountStatus = serde_json::from_value(stored_status(
            "FinalStateVia",
            "update media services account",
        ))
        .expect("the rest of the status still deserializes");
        assert_eq!(status.observed_generation, Some(3));
        let op = status.pending_operation.expect("parked");
        assert_eq!(
            op.polling_method,
            PollingMethodKind::Unknown("FinalStateVia".into())
        );
        assert_eq!(from_status(&op), None);
        assert_eq!(
            serde_json::to_value(&op).expect("serializes")["pollingMethod"],
            "FinalStateVia"
        );
    }

    /// An operation name this version does not know still resumes polling, under the generic
    /// name.
    #[test]
    fn an_unknown_operation_name_still_resumes_polling() {
        let status = parked(stored_status("Location", "resize media services account"));
        let op = from_status(&status).expect("resumes");
        assert_eq!(op.operation, Operation::OtherLongRunningOperation);
        assert_eq!(op.polling, PollingMethod::Location(OP_URL.into()));
    }
}
