//! How a reconcile fails. Azure failures are not errors here: they are outcomes a pass
//! records in status and requeues on. What fails the reconcile is the apiserver refusing the
//! operator its own object.

/// Failures of the reconcile itself.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The status write failed.
    #[error("failed to write the status of {object}")]
    WriteStatus {
        /// `namespace/name`.
        object: String,
        /// The error.
        #[source]
        source: kube::Error,
    },
    /// The finalizer could not be added or removed.
    #[error("failed to update the finalizers of {object}")]
    WriteFinalizers {
        /// `namespace/name`.
        object: String,
        /// The error.
        #[source]
        source: kube::Error,
    },
    /// The object could not be read from the apiserver at the start of a pass.
    #[error("failed to read {object}")]
    Read {
        /// `namespace/name`.
        object: String,
        /// The error.
        #[source]
        source: kube::Error,
    },
}

impl Error {
    /// Stable reason for events and metrics (`ams_reconcile_failures_total{reason}`).
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Error::WriteStatus { .. } => "StatusWriteFailed",
            Error::WriteFinalizers { .. } => "FinalizerWriteFailed",
            Error::Read { .. } => "ReadFailed",
        }
    }
}
