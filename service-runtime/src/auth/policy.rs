//! What a caller may see and change: every decision of both services, in one place and without I/O.
//!
//! A customer token acts for its own customer only: it places orders for itself, commands, reads, lists and streams
//! its own orders. Another customer's order is *hidden* — answered exactly as an order that does not exist (404, or
//! the 202 of a version not reached) — so that a customer cannot learn which order ids exist. Asking outright for
//! what it may not have (placing for, or listing, another customer) is *forbidden* (403). Staff scopes reach every
//! customer's orders; `none` mode trusts every caller.

use super::Caller;

/// A request for what the caller may not have: 403, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Forbidden(pub &'static str);

/// The orders a caller may change; any other is hidden.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Changes<'a> {
    AnyOrder,
    /// This customer's orders only.
    OrdersOf(&'a str),
    /// None: a token without a customer and without the scope to change any order.
    NoOrder,
}

impl Caller {
    /// Whether the caller may see an order of `owner`; when not, the order is hidden as if it did not exist.
    pub fn may_read(&self, owner: &str) -> bool {
        self.trusted || self.scopes.read_any || self.is(owner)
    }

    /// Whether the caller may confirm, ship or cancel an order of `owner`; when not, the order is hidden.
    pub fn may_change(&self, owner: &str) -> bool {
        match self.changes() {
            Changes::AnyOrder => true,
            Changes::OrdersOf(customer) => customer == owner,
            Changes::NoOrder => false,
        }
    }

    /// Which orders the caller may confirm, ship or cancel, as a command's statement filters them.
    pub fn changes(&self) -> Changes<'_> {
        match &self.customer_id {
            _ if self.trusted || self.scopes.write_any => Changes::AnyOrder,
            Some(customer) => Changes::OrdersOf(customer),
            None => Changes::NoOrder,
        }
    }

    /// The customer a new order is placed for: the one the body names, or the caller's own when it names none (`None`
    /// then only for a caller without a customer id, and the order's own validation refuses it).
    pub fn customer_for_new_order(&self, named: Option<&str>) -> Result<Option<String>, Forbidden> {
        match named {
            None => Ok(self.customer_id.clone()),
            Some(named) if self.trusted || self.scopes.write_any || self.is(named) => Ok(Some(named.to_owned())),
            Some(_) => Err(Forbidden("a customer token places orders for its own customer only")),
        }
    }

    /// The customer a list read is confined to: a customer's own, whatever it asked (asking for another is 403); the
    /// filter asked for, if any, for staff.
    pub fn list_filter(&self, asked: Option<&str>) -> Result<Option<String>, Forbidden> {
        if self.trusted || self.scopes.read_any {
            return Ok(asked.map(str::to_owned));
        }
        match (asked, &self.customer_id) {
            (None, Some(own)) => Ok(Some(own.clone())),
            (Some(asked), Some(own)) if asked == own => Ok(Some(own.clone())),
            (Some(_), Some(_)) => Err(Forbidden("a customer token lists its own customer's orders only")),
            (_, None) => Err(Forbidden("this token names no customer, and has no scope to list every customer's")),
        }
    }

    /// Whether the caller may use the admin endpoints in `jwt` mode (`orders:admin`).
    pub fn may_administer(&self) -> bool {
        self.scopes.admin
    }

    /// Whether the caller may read the event feed in `jwt` mode (`events:read`).
    pub fn may_read_events(&self) -> bool {
        self.scopes.events_read
    }

    /// What idempotency keys are scoped to: the same key from two callers is two keys. In `none` mode every caller
    /// shares one space, as before there were callers.
    pub fn idempotency_scope(&self) -> &str {
        if self.trusted {
            ""
        } else {
            &self.principal
        }
    }

    fn is(&self, customer: &str) -> bool {
        self.customer_id.as_deref() == Some(customer)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Scopes;
    use super::*;

    fn customer(id: &str) -> Caller {
        let scopes = Scopes::default();
        Caller { principal: id.to_owned(), customer_id: Some(id.to_owned()), scopes, trusted: false, expires_at: None }
    }

    fn staff(scopes: Scopes) -> Caller {
        let staff = Some("staff-1".to_owned());
        Caller { principal: "staff-1".to_owned(), customer_id: staff, scopes, trusted: false, expires_at: None }
    }

    fn anyone() -> Caller {
        Caller::trusted(None)
    }

    #[test]
    fn given_a_customer_when_it_reads_or_changes_then_only_its_own_orders_are_visible() {
        let a = customer("cust-a");
        assert!(a.may_read("cust-a") && a.may_change("cust-a"));
        assert!(!a.may_read("cust-b") && !a.may_change("cust-b"));
    }

    #[test]
    fn given_staff_when_they_read_or_change_then_the_scope_decides() {
        let reader = staff(Scopes { read_any: true, ..Scopes::default() });
        assert!(reader.may_read("cust-b") && !reader.may_change("cust-b"));
        let writer = staff(Scopes { write_any: true, ..Scopes::default() });
        assert!(writer.may_change("cust-b") && !writer.may_read("cust-b"));
        assert!(anyone().may_read("cust-b") && anyone().may_change("cust-b"));
    }

    #[test]
    fn given_a_customer_when_it_places_then_the_order_is_its_own_or_forbidden() {
        let a = customer("cust-a");
        assert_eq!(a.customer_for_new_order(None), Ok(Some("cust-a".to_owned())));
        assert_eq!(a.customer_for_new_order(Some("cust-a")), Ok(Some("cust-a".to_owned())));
        assert!(a.customer_for_new_order(Some("cust-b")).is_err());
        let writer = staff(Scopes { write_any: true, ..Scopes::default() });
        assert_eq!(writer.customer_for_new_order(Some("cust-b")), Ok(Some("cust-b".to_owned())));
        assert_eq!(anyone().customer_for_new_order(None), Ok(None), "none mode: the body must name one");
    }

    #[test]
    fn given_a_customer_when_it_lists_then_the_filter_is_forced_to_its_own() {
        let a = customer("cust-a");
        assert_eq!(a.list_filter(None), Ok(Some("cust-a".to_owned())));
        assert_eq!(a.list_filter(Some("cust-a")), Ok(Some("cust-a".to_owned())));
        assert!(a.list_filter(Some("cust-b")).is_err());
        let nameless = Caller { customer_id: None, ..customer("svc") };
        assert!(nameless.list_filter(None).is_err());
        let reader = staff(Scopes { read_any: true, ..Scopes::default() });
        assert_eq!(reader.list_filter(None), Ok(None));
        assert_eq!(reader.list_filter(Some("cust-b")), Ok(Some("cust-b".to_owned())));
        assert_eq!(anyone().list_filter(None), Ok(None));
    }

    #[test]
    fn given_scopes_when_admin_or_feed_is_asked_then_only_their_scope_grants_it() {
        assert!(!customer("cust-a").may_administer() && !customer("cust-a").may_read_events());
        assert!(staff(Scopes { admin: true, ..Scopes::default() }).may_administer());
        assert!(staff(Scopes { events_read: true, ..Scopes::default() }).may_read_events());
    }

    #[test]
    fn idempotency_keys_are_per_caller_with_tokens_and_shared_without() {
        assert_eq!(customer("cust-a").idempotency_scope(), "cust-a");
        assert_ne!(customer("cust-a").idempotency_scope(), customer("cust-b").idempotency_scope());
        assert_eq!(anyone().idempotency_scope(), "");
    }
}
