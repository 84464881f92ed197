//! The comments written in the .proto files, as the document's summaries
//! and descriptions: the contract is documented once, where it is defined.
//! They come from the descriptor sets' source info (`build.rs` keeps it;
//! `buf build` and `protoc --include_source_info` do too).

use prost_reflect::{FieldDescriptor, FileDescriptor, MessageDescriptor, MethodDescriptor};

/// The comment above a method, a message or a field, cleaned of the
/// comment markers' indentation; `None` where there is none.
pub(super) fn of_method(method: &MethodDescriptor) -> Option<String> {
    leading(&method.parent_file(), method.path())
}

pub(super) fn of_message(message: &MessageDescriptor) -> Option<String> {
    leading(&message.parent_file(), message.path())
}

pub(super) fn of_field(field: &FieldDescriptor) -> Option<String> {
    leading(&field.parent_file(), field.path())
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
    fn a_summary_is_the_first_sentence() {
        assert_eq!(summary("Adds a product. A client-chosen id\nis kept."), "Adds a product.");
        assert_eq!(
            summary("Lists orders, newest first,\noptionally by status."),
            "Lists orders, newest first, optionally by status."
        );
        assert_eq!(summary("One.\n\nTwo."), "One.");
    }
}
