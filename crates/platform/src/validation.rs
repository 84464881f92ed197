//! Field-level validation errors: every bad field of a request is reported at
//! once, as INVALID_ARGUMENT with `google.rpc.BadRequest` field violations
//! (which the gateway renders as the error body's `details`), up to
//! [`MAX_REPORTED`] of them.

use std::fmt;

use tonic_types::{ErrorDetails, StatusExt};

/// The most violations one error names; the message counts the rest.
///
/// An error travels in the call's trailers (its message as `grpc-message`,
/// its details as `grpc-status-details-bin`), one HTTP/2 header block. An
/// order of 350,000 empty items (1 MiB of JSON) made an error naming
/// 700,000 violations: building it took the orders service's peak RSS from
/// 22 MB to 527 MB, and the gateway's HTTP/2 client refused its header
/// block as excessive (h2's continuation limit), which dropped the
/// connection with every other call on it and counted as the service
/// failing. The first few name the problem as well as all would.
pub const MAX_REPORTED: usize = 20;

/// The problems found in one request, each naming its field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Violations {
    /// The first [`MAX_REPORTED`], in the order found.
    reported: Vec<(String, String)>,
    /// How many more were found.
    unreported: usize,
}

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a violation of `field` (a proto field path such as `email` or
    /// `items[2].quantity`); past [`MAX_REPORTED`], only counts it.
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        if self.reported.len() < MAX_REPORTED {
            self.reported.push((field.into(), description.into()));
        } else {
            self.unreported += 1;
        }
    }

    /// Keeps the value of a check, or records why `field` failed it.
    pub fn check<T, E: fmt::Display>(&mut self, field: &str, result: Result<T, E>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.add(field, error.to_string());
                None
            }
        }
    }

    /// `list`, or none of it when it has more than `max` (`what`, say
    /// "lines"), recorded as a violation of `field`: a request refused for
    /// its length is not read on, to a violation per entry.
    pub fn at_most<'a, T>(&mut self, field: &str, list: &'a [T], max: usize, what: &str) -> &'a [T] {
        if list.len() <= max {
            return list;
        }
        self.add(field, format!("must list at most {max} {what}, not {}", list.len()));
        &[]
    }

    /// Like [`Violations::check`] for an optional input: `None` stays `None`.
    pub fn check_optional<T, E: fmt::Display>(
        &mut self,
        field: &str,
        result: Option<Result<T, E>>,
    ) -> Option<Option<T>> {
        match result {
            None => Some(None),
            Some(result) => self.check(field, result).map(Some),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.reported.is_empty()
    }

    /// `Ok(())` when nothing was recorded.
    pub fn into_result(self) -> Result<(), Violations> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }

    /// The violations reported (the first [`MAX_REPORTED`]).
    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.reported.iter().map(|(field, description)| (field.as_str(), description.as_str()))
    }

    /// INVALID_ARGUMENT whose message lists the violations and whose details
    /// carry them as `google.rpc.BadRequest`.
    pub fn into_status(self) -> tonic::Status {
        let message = self.to_string();
        let mut details = ErrorDetails::new();
        for (field, description) in self.reported {
            details.add_bad_request_violation(field, description);
        }
        tonic::Status::with_error_details(tonic::Code::InvalidArgument, message, details)
    }
}

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid request: ")?;
        for (i, (field, description)) in self.reported.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{field} {description}")?;
        }
        if self.unreported > 0 {
            write!(f, "; and {} more", self.unreported)?;
        }
        Ok(())
    }
}

impl std::error::Error for Violations {}

/// A single-field violation, for errors found one at a time.
pub fn violation(field: impl Into<String>, description: impl Into<String>) -> Violations {
    let mut violations = Violations::new();
    violations.add(field, description);
    violations
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_violation_is_in_the_message_and_the_details() {
        let mut violations = Violations::new();
        assert_eq!(violations.check::<u8, _>("email", Err("must contain @")), None);
        assert_eq!(violations.check::<_, String>("name", Ok(7)), Some(7));
        violations.add("password", "must be at least 8 characters");
        let status = violations.into_status();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(status.message(), "invalid request: email must contain @; password must be at least 8 characters");
        let details = status.get_error_details();
        let fields: Vec<_> = details.bad_request().unwrap().field_violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["email", "password"]);
    }

    #[test]
    fn past_the_most_reported_the_rest_are_counted() {
        let mut violations = Violations::new();
        for index in 0..100_000 {
            violations.add(format!("items[{index}].quantity"), "must be between 1 and 1000000");
        }
        let status = violations.into_status();
        let listed = status.message().matches("must be between").count();
        assert_eq!(listed, MAX_REPORTED, "{}", status.message());
        assert!(status.message().ends_with("items[19].quantity must be between 1 and 1000000; and 99980 more"));
        let details = status.get_error_details();
        let fields: Vec<_> = details.bad_request().unwrap().field_violations.iter().map(|v| v.field.clone()).collect();
        assert_eq!(fields.len(), MAX_REPORTED);
        assert_eq!((fields[0].as_str(), fields[19].as_str()), ("items[0].quantity", "items[19].quantity"));
    }

    #[test]
    fn a_list_too_long_is_one_violation_and_is_not_read() {
        let mut violations = Violations::new();
        assert_eq!(violations.at_most("items", &[1, 2], 2, "lines"), [1, 2]);
        assert!(violations.is_empty());
        assert!(violations.at_most("items", &[1, 2, 3], 2, "lines").is_empty());
        assert_eq!(violations.to_string(), "invalid request: items must list at most 2 lines, not 3");
    }

    #[test]
    fn nothing_recorded_is_ok() {
        assert!(Violations::new().into_result().is_ok());
        let mut violations = Violations::new();
        assert_eq!(violations.check_optional::<u8, String>("x", None), Some(None));
        assert!(violations.into_result().is_ok());
    }
}
