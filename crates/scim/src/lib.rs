//! SCIM 2.0 for Steward (RFC 7643, RFC 7644): the schemas served, resources as checked JSON
//! documents, PATCH, the filter and path parser with its printer, and the mapping of filters to
//! store conditions on indexed columns. No IO: the server crate owns HTTP and transactions.

pub mod error;
pub mod filter;
pub mod query;
pub mod resource;
pub mod schema;

pub use error::{ScimError, ScimType};
pub use filter::{AttrPath, CompValue, CompareOp, Filter, PatchPath, parse_filter, parse_path};
