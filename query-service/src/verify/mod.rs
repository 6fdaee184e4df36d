//! Anti-entropy: a read model checked against the log it was projected from.
//!
//! Each document of the active generation — a view, for the order views — is compared with what its projection makes
//! of the newest event that writes it (an event the projector dead-letters as unreadable changes nothing, so it is
//! not expected). A document is **missing** (the log writes it, it does not exist), **behind** (an older version),
//! **ahead** (a version the log does not have, or a document the log does not write) or **diverged** (the same
//! version, other fields).
//!
//! Checking a live system must not take projection lag for a finding: a missing or behind view counts only when the
//! read model's position — every event up to it applied — had passed the oldest event the view lacks *before* the
//! view was read; otherwise it is in flight. Ahead needs no such rule: the view is read before the log, so any
//! event it reflects was committed, and is in the log, by then.
//!
//! [`walk`] checks everything (`query-service verify`, optionally repairing); [`sampler`] checks a few orders a
//! second in the running service.

pub mod sampler;
pub mod walk;

use mongodb::bson::{Bson, Document};
use serde::Serialize;

use crate::store::{Guarded, RepairGuard};

/// How a view differs from the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Missing,
    Behind,
    Diverged,
    Ahead,
}

impl Kind {
    /// As the `kind` label of `read_model_divergent_total` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Behind => "behind",
            Self::Diverged => "diverged",
            Self::Ahead => "ahead",
        }
    }
}

/// What the log says one document should be.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expected {
    /// The document the newest readable event that writes it makes.
    pub newest: Option<Guarded>,
    /// Sequence of the oldest event newer than the stored document.
    pub first_unapplied: Option<i64>,
}

impl Expected {
    /// Takes into account one `document` an event at `sequence` writes, given the version the stored one has.
    pub fn add(&mut self, document: Guarded, sequence: i64, stored_version: Option<i64>) {
        if stored_version.is_none_or(|stored| document.version > stored) {
            self.first_unapplied = Some(self.first_unapplied.map_or(sequence, |s| s.min(sequence)));
        }
        if self.newest.as_ref().is_none_or(|newest| newest.version < document.version) {
            self.newest = Some(document);
        }
    }
}

/// A document as stored, read leniently: one this service cannot read is a finding, not an error.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// Its `version`, as stored (what a repair compares against).
    pub seen: Bson,
    pub version: Option<i64>,
    pub document: Document,
}

impl Stored {
    pub fn from_document(document: Document) -> Self {
        let seen = document.get("version").cloned().unwrap_or(Bson::Null);
        let version = match &seen {
            Bson::Int64(v) => Some(*v),
            Bson::Int32(v) => Some(i64::from(*v)),
            _ => None,
        };
        Self { seen, version, document }
    }
}

/// The answer of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Agrees,
    /// Behind or missing, but the events it lacks are not yet below the read model's position.
    InFlight,
    Differs(Kind),
}

/// Compares a stored view with what the log says, `position` being the read model's position read before the view.
pub fn check(expected: &Expected, stored: Option<&Stored>, position: i64) -> Verdict {
    let lagging = || {
        if expected.first_unapplied.is_some_and(|sequence| sequence > position) {
            Verdict::InFlight
        } else {
            Verdict::Differs(if stored.is_some() { Kind::Behind } else { Kind::Missing })
        }
    };
    let (newest, stored) = match (&expected.newest, stored) {
        (None, None) => return Verdict::Agrees,
        (None, Some(_)) => return Verdict::Differs(Kind::Ahead),
        (Some(_), None) => return lagging(),
        (Some(newest), Some(stored)) => (newest, stored),
    };
    match stored.version {
        None => Verdict::Differs(Kind::Diverged),
        Some(version) if version < newest.version => lagging(),
        Some(version) if version > newest.version => Verdict::Differs(Kind::Ahead),
        Some(_) if stored.document == newest.stored() => Verdict::Agrees,
        Some(_) => Verdict::Differs(Kind::Diverged),
    }
}

/// One document that differs from the log.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// The document's id: the order's, for the order views and the customer summary; `<order id>:<step>` for the
    /// sales dashboard's facts.
    pub order_id: String,
    pub kind: Kind,
    /// The stored view's version (none when missing or unreadable).
    pub view_version: Option<i64>,
    /// The newest logged version (none when the log does not know the order).
    pub log_version: Option<i64>,
}

impl Finding {
    pub fn new(order_id: String, kind: Kind, expected: &Expected, stored: Option<&Stored>) -> Self {
        Self {
            order_id,
            kind,
            view_version: stored.and_then(|s| s.version),
            log_version: expected.newest.as_ref().map(|v| v.version),
        }
    }
}

/// The write that makes a document agree with the log again, writing only over what the check saw: a missing or
/// behind one gets the newest through the projector's own guard (never lowering a version); a diverged or ahead one
/// is replaced (or, when the log does not write it, deleted) only if it still holds the version seen.
pub fn repair_of<'a>(
    kind: Kind,
    expected: &'a Expected,
    stored: Option<&Stored>,
) -> Option<(RepairGuard, Option<&'a Guarded>)> {
    let newest = expected.newest.as_ref();
    match kind {
        Kind::Missing | Kind::Behind => newest.map(|view| (RepairGuard::Older(view.version), Some(view))),
        Kind::Diverged | Kind::Ahead => stored.map(|stored| (RepairGuard::Exactly(stored.seen.clone()), newest)),
    }
}

/// Counts of one check of the read model.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Orders checked: every order with a logged event or a view.
    pub checked: u64,
    pub missing: u64,
    pub behind: u64,
    pub diverged: u64,
    pub ahead: u64,
    /// Behind or missing views whose events the projector had not reached yet: not findings.
    pub in_flight: u64,
    /// Logged events the projector cannot read (dead-lettered; they change no view).
    pub unreadable_events: u64,
    /// Findings a repair wrote over.
    pub repaired: u64,
}

impl Summary {
    pub fn count(&mut self, verdict: Verdict) {
        self.checked += 1;
        match verdict {
            Verdict::Agrees => {}
            Verdict::InFlight => self.in_flight += 1,
            Verdict::Differs(Kind::Missing) => self.missing += 1,
            Verdict::Differs(Kind::Behind) => self.behind += 1,
            Verdict::Differs(Kind::Diverged) => self.diverged += 1,
            Verdict::Differs(Kind::Ahead) => self.ahead += 1,
        }
    }

    pub fn findings(&self) -> u64 {
        self.missing + self.behind + self.diverged + self.ahead
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoredView;
    use shared_events::{EventType, OrderEvent, OrderState};

    fn event(version: i64, sequence: i64) -> OrderEvent {
        let state: OrderState = serde_json::from_value(serde_json::json!({
            "customer": {"id": "c-1", "segment": "standard"}, "status": "Placed", "currency": "EUR",
            "items": [{"sku": "A", "quantity": 1, "unitPrice": "2.50", "lineTotal": "2.50"}], "total": "2.50",
            "placedAt": "2026-12-01T10:00:00Z", "updatedAt": "2026-12-01T10:00:00Z"
        }))
        .expect("a state");
        OrderEvent {
            event_id: uuid::Uuid::nil(),
            event_type: EventType::OrderPlaced,
            order_id: uuid::Uuid::nil(),
            version,
            sequence,
            occurred_at: time::OffsetDateTime::UNIX_EPOCH,
            traceparent: None,
            state,
        }
    }

    fn stored(view: &Guarded) -> Stored {
        Stored::from_document(view.stored())
    }

    /// Given the order's events and a stored view (of version `stored`), the expectation.
    fn given(events: &[(i64, i64)], stored: Option<i64>) -> Expected {
        let mut expected = Expected::default();
        for &(version, sequence) in events {
            let view = StoredView::from_event(&event(version, sequence)).guarded().expect("a view");
            expected.add(view, sequence, stored);
        }
        expected
    }

    #[test]
    fn a_view_at_the_newest_logged_version_with_the_same_fields_agrees() {
        let expected = given(&[(1, 10), (2, 20)], Some(2));
        let view = expected.newest.clone().expect("newest");
        assert_eq!(check(&expected, Some(&stored(&view)), 20), Verdict::Agrees);
    }

    #[test]
    fn a_view_with_the_newest_version_but_other_fields_has_diverged() {
        let expected = given(&[(1, 10)], Some(1));
        let mut view = expected.newest.clone().expect("newest");
        view.document.insert("total", "0.01");
        assert_eq!(check(&expected, Some(&stored(&view)), 99), Verdict::Differs(Kind::Diverged));
        let unreadable = Stored::from_document(mongodb::bson::doc! { "_id": "x", "version": "one" });
        assert_eq!(check(&expected, Some(&unreadable), 99), Verdict::Differs(Kind::Diverged));
    }

    #[test]
    fn missing_and_behind_count_only_once_the_position_has_passed_what_the_view_lacks() {
        let expected = given(&[(1, 10), (2, 20), (3, 30)], None);
        assert_eq!(check(&expected, None, 9), Verdict::InFlight);
        assert_eq!(check(&expected, None, 10), Verdict::Differs(Kind::Missing));

        let expected = given(&[(1, 10), (2, 20), (3, 30)], Some(1));
        let mut view = expected.newest.clone().expect("newest");
        view.version = 1;
        // Version 2 (sequence 20) is what it lacks first: behind once the position is past it, even if 3 is not.
        assert_eq!(check(&expected, Some(&stored(&view)), 19), Verdict::InFlight);
        assert_eq!(check(&expected, Some(&stored(&view)), 25), Verdict::Differs(Kind::Behind));
    }

    #[test]
    fn a_version_the_log_does_not_have_is_ahead_whatever_the_position() {
        let expected = given(&[(1, 10)], Some(4));
        let mut view = expected.newest.clone().expect("newest");
        view.version = 4;
        assert_eq!(check(&expected, Some(&stored(&view)), 0), Verdict::Differs(Kind::Ahead));
        assert_eq!(check(&Expected::default(), Some(&stored(&view)), 0), Verdict::Differs(Kind::Ahead));
        assert_eq!(check(&Expected::default(), None, 0), Verdict::Agrees);
    }

    #[test]
    fn repairs_never_lower_a_logged_version_and_write_only_over_what_was_seen() {
        let expected = given(&[(1, 10), (2, 20)], None);
        let (guard, view) = repair_of(Kind::Missing, &expected, None).expect("a repair");
        assert_eq!(guard, RepairGuard::Older(2));
        assert_eq!(view.map(|v| v.version), Some(2));

        let mut ahead = expected.newest.clone().expect("newest");
        ahead.version = 7;
        let (guard, view) = repair_of(Kind::Ahead, &expected, Some(&stored(&ahead))).expect("a repair");
        assert_eq!(guard, RepairGuard::Exactly(Bson::Int64(7)));
        assert_eq!(view.map(|v| v.version), Some(2));
        // A view of an order the log does not know is deleted, if it is still the one seen.
        let unknown = Expected::default();
        let (guard, view) = repair_of(Kind::Ahead, &unknown, Some(&stored(&ahead))).expect("a repair");
        assert_eq!((guard, view), (RepairGuard::Exactly(Bson::Int64(7)), None));
    }

    #[test]
    fn a_summary_counts_findings_apart_from_views_in_flight() {
        let mut summary = Summary::default();
        for verdict in [
            Verdict::Agrees,
            Verdict::InFlight,
            Verdict::Differs(Kind::Missing),
            Verdict::Differs(Kind::Ahead),
            Verdict::Differs(Kind::Ahead),
        ] {
            summary.count(verdict);
        }
        assert_eq!((summary.checked, summary.in_flight, summary.findings()), (5, 1, 3));
        assert_eq!((summary.missing, summary.ahead), (1, 2));
    }
}
