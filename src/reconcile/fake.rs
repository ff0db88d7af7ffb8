//! An in-memory [`AzureApi`] for unit tests of the I/O steps: it records every call and
//! answers writes from a script. Test-only.

use std::collections::VecDeque;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::azure::keys::{KeyInfo, KeyVersionInfo};
use crate::azure::lro::PollingMethod;
use crate::azure::models::authorization::{RoleAssignment, RoleDefinition};
use crate::azure::models::keyvault::{
    AccessPolicyEntry, AccessPolicyUpdateKind, DeletedVault, Vault,
};
use crate::azure::models::media::{MediaAccount, MediaAccountUpdate};
use crate::azure::models::msi::UserAssignedIdentity;
use crate::azure::models::storage::{NetworkRuleSet, StorageAccount};
use crate::azure::{AzureApi, AzureError, PendingOperation, PollOutcome, ResourceId, Started};

/// What a scripted write answers.
pub enum Answer {
    /// Success, synchronously.
    Done,
    /// Accepted; a pending operation.
    Pending,
    /// A service error with this status and code.
    Error(u16, &'static str),
}

/// The fake.
#[derive(Default)]
pub struct FakeAzure {
    /// Calls, as `operation target`.
    pub calls: Mutex<Vec<String>>,
    /// Answers of writes, in order; writes past the end succeed.
    pub script: Mutex<VecDeque<Answer>>,
    /// Vaults `list_vaults` answers.
    pub vaults: Mutex<Vec<Vault>>,
    /// Keys `get_key` answers, by lower-cased name.
    pub keys: Mutex<std::collections::BTreeMap<String, KeyInfo>>,
    /// When set, reads of vaults and keys fail with this status and code.
    pub fail_reads: Mutex<Option<(u16, &'static str)>>,
    /// Reads of vaults and keys, as `operation target`.
    pub reads: Mutex<Vec<String>>,
}

/// A scripted service error with this status and code.
pub(crate) fn service_error(status: u16, code: &str) -> AzureError {
    AzureError::Service {
        operation: crate::azure::Operation::MediaservicesGet,
        resource: "fake".into(),
        status,
        code: code.into(),
        message: format!("scripted {code}"),
        retry_after: None,
        source: Box::new(azure_core::Error::with_message(
            azure_core::error::ErrorKind::Other,
            "scripted",
        )),
    }
}

impl FakeAzure {
    /// A fake whose writes answer `script` in order.
    pub fn scripted(script: Vec<Answer>) -> Self {
        Self {
            script: Mutex::new(script.into()),
            ..Self::default()
        }
    }

    fn record(&self, call: String) {
        self.calls.lock().expect("lock").push(call);
    }

    fn next(&self) -> Answer {
        self.script
            .lock()
            .expect("lock")
            .pop_front()
            .unwrap_or(Answer::Done)
    }

    fn read(&self, call: String) -> Result<(), AzureError> {
        self.reads.lock().expect("lock").push(call);
        match *self.fail_reads.lock().expect("lock") {
            Some((status, code)) => Err(service_error(status, code)),
            None => Ok(()),
        }
    }

    /// Reads so far whose description starts with `prefix`.
    pub fn reads_of(&self, prefix: &str) -> usize {
        self.reads
            .lock()
            .expect("lock")
            .iter()
            .filter(|r| r.starts_with(prefix))
            .count()
    }

    /// The calls so far.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().expect("lock").clone()
    }
}

fn pending(id: &ResourceId) -> PendingOperation {
    PendingOperation {
        operation: crate::azure::Operation::MediaservicesUpdate,
        resource_id: id.to_string(),
        api_version: "2023-01-01".into(),
        polling: PollingMethod::AzureAsyncOperation("https://management.azure.com/op".into()),
        retry_after_seconds: Some(1),
    }
}

#[async_trait]
impl AzureApi for FakeAzure {
    async fn get_media_account(&self, id: &ResourceId) -> Result<Option<MediaAccount>, AzureError> {
        self.record(format!("GET {id}"));
        Ok(None)
    }
    async fn update_media_account(
        &self,
        id: &ResourceId,
        _update: &MediaAccountUpdate,
    ) -> Result<Started<MediaAccount>, AzureError> {
        self.record(format!("PATCH {id}"));
        match self.next() {
            Answer::Done => Ok(Started::Done(MediaAccount::default())),
            Answer::Pending => Ok(Started::Pending(pending(id))),
            Answer::Error(s, c) => Err(service_error(s, c)),
        }
    }
    async fn delete_media_account(&self, id: &ResourceId) -> Result<Started<bool>, AzureError> {
        self.record(format!("DELETE {id}"));
        Ok(Started::Done(true))
    }
    async fn poll_operation(
        &self,
        _operation: &PendingOperation,
    ) -> Result<PollOutcome<serde_json::Value>, AzureError> {
        Ok(PollOutcome::Succeeded(None))
    }
    async fn get_storage_account(
        &self,
        _id: &ResourceId,
    ) -> Result<Option<StorageAccount>, AzureError> {
        Ok(None)
    }
    async fn update_storage_network_rules(
        &self,
        _id: &ResourceId,
        _rules: &NetworkRuleSet,
    ) -> Result<Started<StorageAccount>, AzureError> {
        Ok(Started::Done(StorageAccount::default()))
    }
    async fn get_vault(&self, _id: &ResourceId) -> Result<Option<Vault>, AzureError> {
        Ok(None)
    }
    async fn list_vaults(&self, subscription: &str) -> Result<Vec<Vault>, AzureError> {
        self.read(format!("LIST vaults {subscription}"))?;
        Ok(self.vaults.lock().expect("lock").clone())
    }
    async fn get_deleted_vault(
        &self,
        _subscription: &str,
        _location: &str,
        _name: &str,
    ) -> Result<Option<DeletedVault>, AzureError> {
        Ok(None)
    }
    async fn update_vault_access_policy(
        &self,
        vault: &ResourceId,
        _kind: AccessPolicyUpdateKind,
        _entries: &[AccessPolicyEntry],
    ) -> Result<(), AzureError> {
        self.record(format!("PUT {vault}/accessPolicies/add"));
        match self.next() {
            Answer::Error(s, c) => Err(service_error(s, c)),
            _ => Ok(()),
        }
    }
    async fn get_user_assigned_identity(
        &self,
        _id: &ResourceId,
    ) -> Result<Option<UserAssignedIdentity>, AzureError> {
        Ok(None)
    }
    async fn get_role_definition(
        &self,
        _scope: &str,
        _role_guid: &str,
    ) -> Result<Option<RoleDefinition>, AzureError> {
        Ok(None)
    }
    async fn list_role_assignments(
        &self,
        _scope: &str,
        _principal_id: Option<&str>,
    ) -> Result<Vec<RoleAssignment>, AzureError> {
        Ok(Vec::new())
    }
    async fn create_role_assignment(
        &self,
        scope: &ResourceId,
        name: &str,
        _role_guid: &str,
        _principal_id: &str,
    ) -> Result<RoleAssignment, AzureError> {
        self.record(format!("PUT {scope}/roleAssignments/{name}"));
        match self.next() {
            Answer::Error(s, c) => Err(service_error(s, c)),
            _ => Ok(RoleAssignment::default()),
        }
    }
    async fn delete_role_assignment(&self, id: &str) -> Result<bool, AzureError> {
        self.record(format!("DELETE {id}"));
        Ok(true)
    }
    async fn get_key(
        &self,
        vault_url: &str,
        name: &str,
        _version: Option<&str>,
    ) -> Result<Option<KeyInfo>, AzureError> {
        self.read(format!("GET key {vault_url}{name}"))?;
        Ok(self
            .keys
            .lock()
            .expect("lock")
            .get(&name.to_ascii_lowercase())
            .cloned())
    }
    async fn list_key_versions(
        &self,
        _vault_url: &str,
        _name: &str,
    ) -> Result<Vec<KeyVersionInfo>, AzureError> {
        Ok(Vec::new())
    }
}
