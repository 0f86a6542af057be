//! Errors raised before anything is sent: bad configuration, or a message the
//! destination cannot express. (What happens after sending is a
//! [`crate::Report`], not an error.)

/// An error that names what is wrong and, where it helps, what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The destination's configuration is invalid; the text names the field.
    #[error("invalid destination config: {0}")]
    Config(String),
    /// The destination cannot express this kind of message, and no sensible
    /// degradation exists.
    #[error("{destination} cannot send a `{body}` message: {reason}")]
    Unsupported {
        destination: &'static str,
        body: &'static str,
        reason: String,
    },
    /// The destination cannot do this to a sent message (update, recall): the
    /// platform has no such API, or its window has passed.
    #[error("{destination} cannot {operation} a sent message: {reason}")]
    OperationUnsupported {
        destination: &'static str,
        operation: crate::lifecycle::Operation,
        reason: String,
    },
    /// The message itself is invalid for this destination; the text names the field.
    #[error("invalid message: {0}")]
    InvalidMessage(String),
}

impl Error {
    pub fn operation_unsupported(
        destination: &'static str,
        operation: crate::lifecycle::Operation,
        reason: impl Into<String>,
    ) -> Self {
        Error::OperationUnsupported {
            destination,
            operation,
            reason: reason.into(),
        }
    }

    pub fn unsupported(
        destination: &'static str,
        body: &'static str,
        reason: impl Into<String>,
    ) -> Self {
        Error::Unsupported {
            destination,
            body,
            reason: reason.into(),
        }
    }
}
