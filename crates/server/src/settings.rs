//! The instance settings document: name, branding, default license, policies, placeholder owner.

use serde::{Deserialize, Serialize};
use steward_core::{License, UserId};
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::schema::LicenseSchema;

/// How the instance presents itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Branding {
    /// The product name shown on pages and in emails.
    pub product_name: Option<String>,
    /// An https URL of the logo.
    pub logo_url: Option<String>,
    /// A CSS hex colour such as `#1f6feb`.
    pub primary_color: Option<String>,
    /// Where users write for help.
    pub support_email: Option<String>,
}

/// Instance-wide policies; each has a stated default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Policies {
    /// Instance admins must use two-factor login.
    pub require_totp_for_admins: bool,
    /// Users not seen for this many days count as dormant in reviews; null: never.
    pub dormant_after_days: Option<u32>,
    /// How long a login session lasts.
    pub session_hours: u32,
    /// Email a user when an administrator signs in as them.
    pub impersonation_notice: bool,
    /// Days between access reviews (default 90); instance admins are reminded when one is due.
    /// Null: no reminders.
    pub review_interval_days: Option<u32>,
    /// Days a deprovisioned org is kept before it may be purged.
    pub purge_after_days: u32,
    /// Days of audit history kept; null: forever.
    pub audit_retention_days: Option<u32>,
    /// Refuse webhook targets on private and loopback addresses.
    pub webhook_deny_private: bool,
}

impl Default for Policies {
    fn default() -> Self {
        Policies {
            require_totp_for_admins: false,
            dormant_after_days: None,
            session_hours: 12,
            impersonation_notice: true,
            review_interval_days: Some(90),
            purge_after_days: 30,
            audit_retention_days: None,
            webhook_deny_private: false,
        }
    }
}

/// The instance settings as read and written through `/api/v1/instance`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct InstanceSettings {
    /// The instance's name.
    pub name: String,
    /// Presentation.
    pub branding: Branding,
    /// The license a new org starts from.
    #[schema(value_type = LicenseSchema)]
    pub default_license: License,
    /// Policies.
    pub policies: Policies,
    /// The user that holds ownership of deprovisioned orgs; created on first use when null.
    #[schema(value_type = Option<String>)]
    pub placeholder_owner_id: Option<UserId>,
}

impl Default for InstanceSettings {
    fn default() -> Self {
        InstanceSettings {
            name: "Steward".into(),
            branding: Branding::default(),
            default_license: License::default(),
            policies: Policies::default(),
            placeholder_owner_id: None,
        }
    }
}

impl InstanceSettings {
    /// Checks what the types do not.
    pub fn validate(&self) -> ApiResult<()> {
        let name_len = self.name.trim().chars().count();
        if name_len == 0 || name_len > 200 {
            return Err(ApiError::invalid("name", "must be 1 to 200 characters"));
        }
        // These names reach log lines and email headers: a line break would split them.
        let texts = [
            ("name", Some(&self.name)),
            ("branding.product_name", self.branding.product_name.as_ref()),
            ("branding.logo_url", self.branding.logo_url.as_ref()),
        ];
        for (field, text) in texts {
            if text.is_some_and(|t| t.chars().any(char::is_control)) {
                return Err(ApiError::invalid(field, "must not contain control characters such as line breaks"));
            }
        }
        if self.branding.product_name.as_ref().is_some_and(|n| n.chars().count() > 200) {
            return Err(ApiError::invalid("branding.product_name", "must be at most 200 characters"));
        }
        if let Some(c) = &self.branding.primary_color {
            let ok = c.len() == 7 && c.starts_with('#') && c[1..].chars().all(|c| c.is_ascii_hexdigit());
            if !ok {
                return Err(ApiError::invalid("branding.primary_color", "must be a colour like #1f6feb"));
            }
        }
        // The pages' Content-Security-Policy loads images over https only.
        if let Some(url) = &self.branding.logo_url
            && !(url.starts_with("https://") && url.len() > "https://".len())
        {
            return Err(ApiError::invalid("branding.logo_url", "must be an https URL"));
        }
        if let Some(email) = &self.branding.support_email {
            steward_core::Email::parse(email)
                .map_err(|e| ApiError::invalid("branding.support_email", e.to_string()))?;
        }
        let hours = self.policies.session_hours;
        if !(1..=24 * 90).contains(&hours) {
            return Err(ApiError::invalid("policies.session_hours", "must be 1 to 2160"));
        }
        self.default_license.clone().validated()?;
        Ok(())
    }
}
