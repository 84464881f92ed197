//! The comments written in the .proto files, as the document's summaries
//! and descriptions: the contract is documented once, where it is defined.
//! They come from the descriptor sets' source info (`build.rs` keeps it;
//! `buf build` and `protoc --include_source_info` do too). A field's comment
//! may end with a line `Example: <JSON value>`, which becomes the field's
//! example instead of part of its description.

use prost_reflect::{FieldDescriptor, FileDescriptor, MessageDescriptor, MethodDescriptor};
use serde_json::Value as Json;

/// The comment above a method, a message or a field, cleaned of the
/// comment markers' indentation; `None` where there is none.
pub(super) fn of_method(method: &MethodDescriptor) -> Option<String> {
    leading(&method.parent_file(), method.path())
}

pub(super) fn of_message(message: &MessageDescriptor) -> Option<String> {
    leading(&message.parent_file(), message.path())
}

/// A field's description and example (see the module docs).
pub(super) fn of_field(field: &FieldDescriptor) -> (Option<String>, Option<Json>) {
    let Some(comment) = leading(&field.parent_file(), field.path()) else { return (None, None) };
    split_example(&comment)
}

fn split_example(comment: &str) -> (Option<String>, Option<Json>) {
    let mut example = None;
    let mut description = Vec::new();
    for line in comment.lines() {
        // A line that does not parse stays in the description, where it shows.
        match line.strip_prefix("Example: ").and_then(|value| serde_json::from_str(value).ok()) {
            Some(value) if example.is_none() => example = Some(value),
            _ => description.push(line),
        }
    }
    let description = description.join("\n").trim().to_owned();
    ((!description.is_empty()).then_some(description), example)
}

/// The first sentence: a summary of the whole.
pub(super) fn summary(comment: &str) -> String {
    let paragraph = comment.split("\n\n").next().unwrap_or(comment).replace('\n', " ");
    match paragraph.find(". ") {
        Some(end) => paragraph[..=end].to_owned(),
        None => paragraph,
    }
}

fn leading(file: &FileDescriptor, path: &[i32]) -> Option<String> {
    let info = file.file_descriptor_proto().source_code_info.as_ref()?;
    let location = info.location.iter().find(|location| location.path == path)?;
    let text: Vec<&str> = location.leading_comments.as_deref()?.lines().map(str::trim).collect();
    let text = text.join("\n").trim().to_owned();
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_example_line_becomes_the_example() {
        let (description, example) = split_example("Price in cents.\nExample: 29.99");
        assert_eq!((description.as_deref(), example), (Some("Price in cents."), Some(serde_json::json!(29.99))));
        let (description, example) = split_example("Example: \"prod-123\"");
        assert_eq!((description, example), (None, Some(serde_json::json!("prod-123"))));
        let (description, example) = split_example("Example: not JSON");
        assert_eq!((description.as_deref(), example), (Some("Example: not JSON"), None));
    }

    #[test]
    fn a_summary_is_the_first_sentence() {
        assert_eq!(summary("Adds a product. A client-chosen id\nis kept."), "Adds a product.");
        assert_eq!(
            summary("Lists orders, newest first,\noptionally by status."),
            "Lists orders, newest first, optionally by status."
        );
        assert_eq!(summary("One.\n\nTwo."), "One.");
    }
}
