//! Decoding the two `pgoutput` messages (protocol version 1, text format) the relay reads from its slot: a
//! table's description (`Relation`) and a new row (`Insert`), and turning an inserted outbox row into an
//! [`OutboxRow`]. Every other message (updates, deletes, truncates, types, origins) is [`Change::Other`]: the
//! publication only publishes inserts of `outbox`.

use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::store::OutboxRow;

/// A message the stream could not be read past.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("a pgoutput message ended early")]
    Truncated,
    #[error("a pgoutput tuple column has the unknown kind {0:?}")]
    UnknownColumnKind(char),
    #[error("the outbox row has no column {0}")]
    MissingColumn(&'static str),
    #[error("the outbox column {column} holds {value:?}, which is not a valid {expected}")]
    Invalid { column: &'static str, value: String, expected: &'static str },
    #[error("an insert into relation {0} came before its description")]
    UnknownRelation(u32),
}

/// A table as the stream describes it before its first row (and again after its definition changes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub id: u32,
    pub namespace: String,
    pub name: String,
    pub columns: Vec<String>,
}

/// One decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Relation(Relation),
    /// A new row: its relation, and each column's text (`None` for SQL null or an unchanged TOAST value).
    Insert {
        relation: u32,
        values: Vec<Option<String>>,
    },
    Other,
}

/// Decodes one `pgoutput` message.
pub fn decode(data: &[u8]) -> Result<Change, DecodeError> {
    let mut reader = Reader(data);
    match reader.byte()? {
        b'R' => {
            let id = reader.u32()?;
            let namespace = reader.string()?;
            let name = reader.string()?;
            let _replica_identity = reader.byte()?;
            let count = reader.u16()?;
            let mut columns = Vec::with_capacity(usize::from(count));
            for _ in 0..count {
                let _flags = reader.byte()?;
                columns.push(reader.string()?);
                let _type_oid = reader.u32()?;
                let _type_modifier = reader.u32()?;
            }
            Ok(Change::Relation(Relation { id, namespace, name, columns }))
        }
        b'I' => {
            let relation = reader.u32()?;
            let _new = reader.byte()?;
            Ok(Change::Insert { relation, values: reader.tuple()? })
        }
        _ => Ok(Change::Other),
    }
}

/// How timestamps arrive: the replication connection sets `DateStyle=ISO` and `TimeZone=UTC`
/// ([`super::SESSION_OPTIONS`]), so `2026-12-02 15:25:41.123456+00`.
const TIMESTAMP: &[BorrowedFormatItem<'static>] = format_description!(
    "[year]-[month]-[day] [hour]:[minute]:[second][optional [.[subsecond]]][offset_hour sign:mandatory][optional [:[offset_minute]]]"
);

impl Relation {
    /// Whether this is the outbox table.
    pub fn is_outbox(&self) -> bool {
        self.name == "outbox"
    }

    /// The outbox row a tuple of this relation holds.
    pub fn outbox_row(&self, values: &[Option<String>]) -> Result<OutboxRow, DecodeError> {
        let column = |name: &'static str| -> Result<Option<&str>, DecodeError> {
            let index = self.columns.iter().position(|c| c == name).ok_or(DecodeError::MissingColumn(name))?;
            Ok(values.get(index).and_then(|v| v.as_deref()))
        };
        let required = |name: &'static str| column(name)?.ok_or(DecodeError::MissingColumn(name));
        let invalid = |column: &'static str, value: &str, expected: &'static str| DecodeError::Invalid {
            column,
            value: value.to_owned(),
            expected,
        };
        let int = |name: &'static str| -> Result<i64, DecodeError> {
            let text = required(name)?;
            text.parse().map_err(|_| invalid(name, text, "integer"))
        };
        let uuid = |name: &'static str| -> Result<Uuid, DecodeError> {
            let text = required(name)?;
            Uuid::parse_str(text).map_err(|_| invalid(name, text, "uuid"))
        };
        let payload = required("payload")?;
        let occurred_at = required("occurred_at")?;
        Ok(OutboxRow {
            sequence: int("sequence")?,
            event_id: uuid("event_id")?,
            event_type: required("event_type")?.to_owned(),
            schema_version: i32::try_from(int("schema_version")?)
                .map_err(|_| invalid("schema_version", required("schema_version").unwrap_or_default(), "int4"))?,
            order_id: uuid("order_id")?,
            order_version: int("order_version")?,
            payload: serde_json::from_str(payload).map_err(|_| invalid("payload", payload, "JSON document"))?,
            traceparent: column("traceparent")?.map(str::to_owned),
            occurred_at: OffsetDateTime::parse(occurred_at, TIMESTAMP)
                .map_err(|_| invalid("occurred_at", occurred_at, "timestamp (ISO, UTC)"))?,
        })
    }
}

/// Reads the big-endian fields of a message in order.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        let bytes = self.take(2)?;
        Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let bytes = self.take(4)?;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    /// A null-terminated string.
    fn string(&mut self) -> Result<String, DecodeError> {
        let end = self.0.iter().position(|&b| b == 0).ok_or(DecodeError::Truncated)?;
        let text = String::from_utf8_lossy(&self.0[..end]).into_owned();
        self.0 = &self.0[end + 1..];
        Ok(text)
    }

    /// `TupleData`: a count, then per column its kind and, for text, its length and bytes.
    fn tuple(&mut self) -> Result<Vec<Option<String>>, DecodeError> {
        let count = self.u16()?;
        let mut values = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            match self.byte()? {
                b'n' | b'u' => values.push(None),
                b't' => {
                    let len = self.u32()? as usize;
                    values.push(Some(String::from_utf8_lossy(self.take(len)?).into_owned()));
                }
                other => return Err(DecodeError::UnknownColumnKind(char::from(other))),
            }
        }
        Ok(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLUMNS: [&str; 11] = [
        "sequence",
        "event_id",
        "event_type",
        "schema_version",
        "order_id",
        "order_version",
        "payload",
        "occurred_at",
        "published_at",
        "traceparent",
        "extra",
    ];

    fn relation_message() -> Vec<u8> {
        let mut m = vec![b'R'];
        m.extend(16_384u32.to_be_bytes());
        m.extend(b"public\0outbox\0");
        m.push(b'd');
        m.extend((COLUMNS.len() as u16).to_be_bytes());
        for name in COLUMNS {
            m.push(0);
            m.extend(name.as_bytes());
            m.push(0);
            m.extend(25u32.to_be_bytes());
            m.extend(u32::MAX.to_be_bytes());
        }
        m
    }

    fn insert_message(values: &[Option<&str>]) -> Vec<u8> {
        let mut m = vec![b'I'];
        m.extend(16_384u32.to_be_bytes());
        m.push(b'N');
        m.extend((values.len() as u16).to_be_bytes());
        for value in values {
            match value {
                None => m.push(b'n'),
                Some(text) => {
                    m.push(b't');
                    m.extend((text.len() as u32).to_be_bytes());
                    m.extend(text.as_bytes());
                }
            }
        }
        m
    }

    fn outbox() -> Relation {
        match decode(&relation_message()).expect("a relation") {
            Change::Relation(relation) => relation,
            other => panic!("not a relation: {other:?}"),
        }
    }

    const ROW: [Option<&str>; 11] = [
        Some("42"),
        Some("0192f5a4-7a1b-7c3d-8e9f-0a1b2c3d4e5f"),
        Some("OrderPlaced"),
        Some("2"),
        Some("0192f5a4-7a1b-7c3d-8e9f-000000000001"),
        Some("1"),
        Some(r#"{"total": "12.50", "lines": []}"#),
        Some("2026-12-02 15:25:41.123456+00"),
        None,
        None,
        Some("ignored"),
    ];

    #[test]
    fn a_relation_names_its_table_and_columns_in_order() {
        let relation = outbox();
        assert_eq!((relation.id, relation.namespace.as_str(), relation.name.as_str()), (16_384, "public", "outbox"));
        assert_eq!(relation.columns, COLUMNS);
        assert!(relation.is_outbox());
    }

    #[test]
    fn an_inserted_outbox_row_becomes_the_row_the_notify_relay_would_read() {
        let Change::Insert { relation, values } = decode(&insert_message(&ROW)).expect("an insert") else {
            panic!("not an insert");
        };
        assert_eq!(relation, 16_384);
        let row = outbox().outbox_row(&values).expect("an outbox row");
        assert_eq!(row.sequence, 42);
        assert_eq!(row.event_id.to_string(), "0192f5a4-7a1b-7c3d-8e9f-0a1b2c3d4e5f");
        assert_eq!((row.event_type.as_str(), row.schema_version, row.order_version), ("OrderPlaced", 2, 1));
        assert_eq!(row.payload, serde_json::json!({"total": "12.50", "lines": []}));
        assert_eq!(row.traceparent, None);
        assert_eq!(row.occurred_at, time::macros::datetime!(2026-12-02 15:25:41.123456 UTC));
    }

    #[test]
    fn timestamps_without_fraction_or_with_a_minute_offset_are_read_too() {
        for (text, expected) in [
            ("2026-12-02 15:25:41+00", time::macros::datetime!(2026-12-02 15:25:41 UTC)),
            ("2026-12-02 21:25:41.5+05:30", time::macros::datetime!(2026-12-02 15:55:41.5 UTC)),
        ] {
            let mut row = ROW;
            row[7] = Some(text);
            let Change::Insert { values, .. } = decode(&insert_message(&row)).expect("an insert") else {
                panic!("not an insert");
            };
            assert_eq!(outbox().outbox_row(&values).expect("a row").occurred_at, expected, "{text}");
        }
    }

    #[test]
    fn a_broken_message_or_value_is_an_error_not_a_panic() {
        let insert = insert_message(&ROW);
        for cut in 1..insert.len() {
            assert_eq!(decode(&insert[..cut]), Err(DecodeError::Truncated), "cut at {cut}");
        }
        let mut row = ROW;
        row[0] = Some("forty-two");
        let Change::Insert { values, .. } = decode(&insert_message(&row)).expect("an insert") else {
            panic!("not an insert");
        };
        assert!(matches!(outbox().outbox_row(&values), Err(DecodeError::Invalid { column: "sequence", .. })));
        let mut bad_kind = insert_message(&ROW[..1]);
        bad_kind[8] = b'x';
        assert_eq!(decode(&bad_kind), Err(DecodeError::UnknownColumnKind('x')));
        assert_eq!(decode(b"U\0\0\0\x01"), Ok(Change::Other), "updates are not read");
    }
}
