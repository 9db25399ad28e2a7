//! The attributes Steward serves for Users and Groups (RFC 7643 §4), as data: the `/Schemas`
//! document is printed from it and every incoming resource is checked against it.

use serde_json::{Value, json};

/// The core User schema URI.
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The core Group schema URI.
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// The list response message URI.
pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// The PATCH message URI.
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// The search request message URI.
pub const SEARCH_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
/// The error message URI.
pub const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
/// The bulk request message URI.
pub const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
/// The bulk response message URI.
pub const BULK_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";

/// An attribute's data type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    String,
    Boolean,
    DateTime,
    Reference,
    Complex,
}

/// Whether and how a client may write an attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
    WriteOnly,
}

/// When an attribute is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    Always,
    Never,
    Default,
}

/// One attribute of a schema.
#[derive(Debug)]
pub struct Attr {
    pub name: &'static str,
    pub ty: Type,
    pub multi: bool,
    pub required: bool,
    pub case_exact: bool,
    pub mutability: Mutability,
    pub returned: Returned,
    /// `server` for values unique across the service provider.
    pub unique: bool,
    pub sub: &'static [Attr],
    pub reference_types: &'static [&'static str],
    pub canonical: &'static [&'static str],
    pub description: &'static str,
}

const fn attr(name: &'static str, ty: Type, description: &'static str) -> Attr {
    Attr {
        name,
        ty,
        multi: false,
        required: false,
        case_exact: false,
        mutability: Mutability::ReadWrite,
        returned: Returned::Default,
        unique: false,
        sub: &[],
        reference_types: &[],
        canonical: &[],
        description,
    }
}

const NAME_SUBS: &[Attr] = &[
    attr("formatted", Type::String, "The full name, formatted for display."),
    attr("familyName", Type::String, "The family name."),
    attr("givenName", Type::String, "The given name."),
];

const EMAIL_SUBS: &[Attr] = &[
    Attr {
        required: true,
        ..attr("value", Type::String, "The email address; the primary one is the user's Steward email.")
    },
    Attr { canonical: &["work", "home", "other"], ..attr("type", Type::String, "The kind of address.") },
    attr("primary", Type::Boolean, "Whether this is the primary address."),
];

/// The User attributes Steward keeps.
pub const USER_ATTRS: &[Attr] = &[
    Attr {
        required: true,
        unique: true,
        ..attr("userName", Type::String, "Unique identifier of the user, case-insensitive (often the email).")
    },
    Attr { ty: Type::Complex, sub: NAME_SUBS, ..attr("name", Type::Complex, "The user's name.") },
    attr("displayName", Type::String, "The name shown for the user; Steward's user name."),
    attr("nickName", Type::String, "A casual name."),
    attr("title", Type::String, "The user's title."),
    Attr {
        multi: true,
        required: true,
        sub: EMAIL_SUBS,
        ..attr(
            "emails",
            Type::Complex,
            "Email addresses; Steward keeps the primary one (or the first) as the user's email. A request \
             without any whose userName is an email address (as Entra ID sends a user without a mail \
             attribute) is taken as having that one.",
        )
    },
    Attr {
        required: true,
        ..attr(
            "active",
            Type::Boolean,
            "false deactivates the user (sessions end at once); true reactivates. Taken as true when left out.",
        )
    },
    Attr {
        case_exact: true,
        mutability: Mutability::WriteOnly,
        returned: Returned::Never,
        ..attr("password", Type::String, "A password to set (at least 12 characters); never returned.")
    },
];

const MEMBER_SUBS: &[Attr] = &[
    Attr { case_exact: true, mutability: Mutability::Immutable, ..attr("value", Type::String, "The member's id.") },
    Attr {
        mutability: Mutability::Immutable,
        reference_types: &["User"],
        case_exact: true,
        ..attr("$ref", Type::Reference, "The member's URI.")
    },
    Attr {
        mutability: Mutability::Immutable,
        canonical: &["User"],
        ..attr("type", Type::String, "The member's resource type.")
    },
    Attr { mutability: Mutability::ReadOnly, ..attr("display", Type::String, "The member's name.") },
];

/// The Group attributes Steward keeps (a group is a team).
pub const GROUP_ATTRS: &[Attr] = &[
    Attr {
        required: true,
        ..attr("displayName", Type::String, "\"org name/team name\", or the team name for a token bound to one org.")
    },
    Attr { multi: true, sub: MEMBER_SUBS, ..attr("members", Type::Complex, "The team's members.") },
];

/// Finds an attribute by name, ignoring case as SCIM does.
pub fn find<'a>(attrs: &'a [Attr], name: &str) -> Option<&'a Attr> {
    attrs.iter().find(|a| a.name.eq_ignore_ascii_case(name))
}

fn type_name(t: Type) -> &'static str {
    match t {
        Type::String => "string",
        Type::Boolean => "boolean",
        Type::DateTime => "dateTime",
        Type::Reference => "reference",
        Type::Complex => "complex",
    }
}

fn attr_json(a: &Attr) -> Value {
    let mut v = json!({
        "name": a.name,
        "type": type_name(a.ty),
        "multiValued": a.multi,
        "description": a.description,
        "required": a.required,
        "caseExact": a.case_exact,
        "mutability": match a.mutability {
            Mutability::ReadOnly => "readOnly",
            Mutability::ReadWrite => "readWrite",
            Mutability::Immutable => "immutable",
            Mutability::WriteOnly => "writeOnly",
        },
        "returned": match a.returned {
            Returned::Always => "always",
            Returned::Never => "never",
            Returned::Default => "default",
        },
        "uniqueness": if a.unique { "server" } else { "none" },
    });
    if !a.sub.is_empty() {
        v["subAttributes"] = a.sub.iter().map(attr_json).collect();
    }
    if !a.reference_types.is_empty() {
        v["referenceTypes"] = json!(a.reference_types);
    }
    if !a.canonical.is_empty() {
        v["canonicalValues"] = json!(a.canonical);
    }
    v
}

/// The `/Schemas` resources, given the base URL of `/scim/v2`.
pub fn schemas(base: &str) -> Vec<Value> {
    [(USER_SCHEMA, "User", "User Account", USER_ATTRS), (GROUP_SCHEMA, "Group", "Group (a team)", GROUP_ATTRS)]
        .into_iter()
        .map(|(id, name, description, attrs)| {
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
                "id": id,
                "name": name,
                "description": description,
                "attributes": attrs.iter().map(attr_json).collect::<Vec<_>>(),
                "meta": { "resourceType": "Schema", "location": format!("{base}/Schemas/{id}") },
            })
        })
        .collect()
}

/// The `/ResourceTypes` resources.
pub fn resource_types(base: &str) -> Vec<Value> {
    [("User", "/Users", USER_SCHEMA, "Steward users"), ("Group", "/Groups", GROUP_SCHEMA, "Teams of organizations")]
        .into_iter()
        .map(|(name, endpoint, schema, description)| {
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
                "id": name,
                "name": name,
                "description": description,
                "endpoint": endpoint,
                "schema": schema,
                "schemaExtensions": [],
                "meta": { "resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/{name}") },
            })
        })
        .collect()
}

/// The `/ServiceProviderConfig` resource.
pub fn service_provider_config(base: &str, max_operations: usize, max_payload: usize, max_results: u32) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": null,
        "patch": { "supported": true },
        "bulk": { "supported": true, "maxOperations": max_operations, "maxPayloadSize": max_payload },
        "filter": { "supported": true, "maxResults": max_results },
        "changePassword": { "supported": true },
        "sort": { "supported": true },
        "etag": { "supported": true },
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Bearer token",
            "description": "A SCIM token created by an instance admin (POST /api/v1/scim-tokens)",
            "primary": true,
        }],
        "meta": { "resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig") },
    })
}
