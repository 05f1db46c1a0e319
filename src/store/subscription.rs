//! The subscription record: what every part of the store (engines, the read model, the
//! management-group hierarchy) knows of a subscription. Apart, so that those parts need not import
//! each other for it.

use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub id: Uuid,
    pub display_name: String,
    pub tenant_id: Uuid,
    /// ARM subscription state, e.g. `Enabled`.
    pub state: String,
}
