//! The admin actions' canonical encoding, under the path the service and client have always
//! imported it by. The codec itself lives in [`crate::admin::codec`] so that the state machine,
//! which decodes and executes the committed bytes, does not depend on the gRPC services.
//!
//! Owns: nothing. Must not: grow a second encoder or decoder.

pub use crate::admin::codec::*;
