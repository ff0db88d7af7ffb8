//! A long-running Azure operation parked in status between passes: what status records of it,
//! and reading it back. A pass that starts an operation never waits on it; the next pass polls it
//! from what is recorded here, even in a new process.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::azure::lro::PollingMethod;
use crate::azure::{Operation, PendingOperation};
use crate::crd::account::PendingOperationStatus;

use super::prereqs::Area;

/// What status records of an operation this pass started and parked, for `area`.
#[must_use]
pub fn to_status(op: &PendingOperation, area: Area, now: Timestamp) -> PendingOperationStatus {
    let method = match &op.polling {
        PollingMethod::AzureAsyncOperation(_) => "AzureAsyncOperation",
        PollingMethod::Location(_) => "Location",
        PollingMethod::ProvisioningState(_) => "ProvisioningState",
    };
    PendingOperationStatus {
        operation: op.operation.as_str().to_owned(),
        condition: area.condition_type().to_owned(),
        resource_id: op.resource_id.clone(),
        api_version: op.api_version.clone(),
        polling_method: method.to_owned(),
        polling_url: op.polling.url().to_owned(),
        started_at: Time(now),
    }
}

/// The operation a status records as parked; `None` for a value this version cannot read
/// (observing again is always safe).
#[must_use]
pub fn from_status(s: &PendingOperationStatus) -> Option<PendingOperation> {
    let url = s.polling_url.clone();
    let polling = match s.polling_method.as_str() {
        "AzureAsyncOperation" => PollingMethod::AzureAsyncOperation(url),
        "Location" => PollingMethod::Location(url),
        "ProvisioningState" => PollingMethod::ProvisioningState(url),
        _ => return None,
    };
    Some(PendingOperation {
        operation: Operation::from_name(&s.operation)
            .unwrap_or(Operation::OtherLongRunningOperation),
        resource_id: s.resource_id.clone(),
        api_version: s.api_version.clone(),
        polling,
        retry_after_seconds: None,
    })
}
