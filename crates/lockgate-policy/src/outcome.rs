//! Checks the shape of result rules and folds them into a [`PolicyOutcome`].
//!
//! A rule that returns the wrong shape is an error, not an empty result: a typo in a
//! team policy must not silently un-gate a change.

use crate::PolicyError;
use lockgate_core::decision::{PolicyOutcome, RequiredApproval, RuleMessage};
use serde_json::Value;

pub(crate) fn collect(
    outcome: &mut PolicyOutcome,
    rule: &str,
    path: &str,
    value: Value,
) -> Result<(), PolicyError> {
    let items = match value {
        Value::Null => return Ok(()),
        Value::Array(items) => items,
        other => {
            return Err(shape(
                path,
                format!("expected a set of objects, got {other}"),
            ));
        }
    };
    for item in items {
        match rule {
            "require_approval" => outcome.require_approval.push(approval(path, &item)?),
            "deny" => outcome.deny.push(message(path, &item)?),
            "warn" => outcome.warn.push(message(path, &item)?),
            _ => outcome.notes.push(message(path, &item)?),
        }
    }
    Ok(())
}

fn shape(path: &str, message: String) -> PolicyError {
    PolicyError::Shape {
        rule: path.into(),
        message,
    }
}

fn string_field(path: &str, item: &Value, key: &str) -> Result<String, PolicyError> {
    match item.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(shape(path, format!("{item} has no string field {key:?}"))),
    }
}

fn message(path: &str, item: &Value) -> Result<RuleMessage, PolicyError> {
    // A bare string is accepted as a message; its rule id is the rule's path.
    if let Value::String(s) = item {
        return Ok(RuleMessage {
            rule: path.trim_start_matches("data.").into(),
            message: s.clone(),
        });
    }
    Ok(RuleMessage {
        rule: string_field(path, item, "rule")?,
        message: string_field(path, item, "message")?,
    })
}

fn approval(path: &str, item: &Value) -> Result<RequiredApproval, PolicyError> {
    let owners = match item.get("owners") {
        None => Vec::new(),
        Some(Value::Array(list)) => list
            .iter()
            .map(|o| {
                o.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| shape(path, format!("owner {o} is not a string")))
            })
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(shape(path, format!("owners must be a list, got {other}"))),
    };
    let count = match item.get("count") {
        None => 1,
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| shape(path, format!("count must be an integer 1..100, got {v}")))?
            as u32,
    };
    let escalate_after = match item.get("escalate_after") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            lockgate_core::decision::parse_wait(s).map_err(|e| shape(path, e))?;
            Some(s.clone())
        }
        Some(other) => {
            return Err(shape(
                path,
                format!("escalate_after must be a string like \"4h\", got {other}"),
            ));
        }
    };
    Ok(RequiredApproval {
        rule: string_field(path, item, "rule")?,
        owners,
        count,
        reason: string_field(path, item, "reason")?,
        escalate_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(item: Value) -> Result<RequiredApproval, PolicyError> {
        let mut o = PolicyOutcome::default();
        collect(&mut o, "require_approval", "data.team", json!([item]))?;
        Ok(o.require_approval.remove(0))
    }

    #[test]
    fn a_rule_may_set_its_escalation_wait() {
        let base = json!({"rule": "team.x", "reason": "r", "escalate_after": "1h 30m"});
        assert_eq!(one(base).unwrap().escalate_after.as_deref(), Some("1h 30m"));
        let none = one(json!({"rule": "team.x", "reason": "r"})).unwrap();
        assert_eq!(none.escalate_after, None);
        for bad in [json!("soon"), json!(4), json!("0s"), json!("400days")] {
            let e = one(json!({"rule": "team.x", "reason": "r", "escalate_after": bad}));
            assert!(e.is_err(), "{bad} must be refused, not ignored");
        }
    }
}
