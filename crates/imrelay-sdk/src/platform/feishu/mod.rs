//! feishu destinations (work in progress).

use crate::destination::Registration;

/// The destination types of this platform.
pub static REGISTRATIONS: &[Registration] = &[];
