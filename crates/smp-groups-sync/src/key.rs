//! Keys of the document: a namespace and a name.

use std::fmt;

use crate::error::Error;
use crate::limits::{
    MAX_BIO_LEN, MAX_DISPLAY_NAME_LEN, MAX_IMAGE_LEN, MAX_NAME_LEN, MAX_VALUE_LEN,
};

/// What part of the document a key is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Namespace {
    /// Profile fields ([`ProfileField`]).
    Profile,
    /// Profile preferences: any name, any value.
    Preference,
    /// The applications' key/value space.
    App,
    /// A namespace of a newer version: kept, merged and passed on as is.
    Other(i32),
}

impl Namespace {
    /// Its protobuf enum value.
    pub fn to_i32(self) -> i32 {
        match self {
            Self::Profile => 1,
            Self::Preference => 2,
            Self::App => 3,
            Self::Other(v) => v,
        }
    }

    /// The namespace of a protobuf enum value; `None` for 0 (unspecified).
    pub fn from_i32(v: i32) -> Option<Self> {
        match v {
            0 => None,
            1 => Some(Self::Profile),
            2 => Some(Self::Preference),
            3 => Some(Self::App),
            other => Some(Self::Other(other)),
        }
    }
}

/// The profile's fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProfileField {
    /// `display_name`: UTF-8, at most [`MAX_DISPLAY_NAME_LEN`] bytes.
    DisplayName,
    /// `bio`: UTF-8, at most [`MAX_BIO_LEN`] bytes.
    Bio,
    /// `image`: bytes (an encoded picture), at most [`MAX_IMAGE_LEN`].
    Image,
}

impl ProfileField {
    /// The key name.
    pub fn name(self) -> &'static str {
        match self {
            Self::DisplayName => "display_name",
            Self::Bio => "bio",
            Self::Image => "image",
        }
    }
}

/// A key of the document.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    /// Its namespace.
    pub namespace: Namespace,
    /// Its name (UTF-8, 1 to [`MAX_NAME_LEN`] bytes).
    pub name: String,
}

impl Key {
    /// A key in `namespace`.
    pub fn new(namespace: Namespace, name: &str) -> Self {
        Self {
            namespace,
            name: name.to_owned(),
        }
    }

    /// A profile field.
    pub fn profile(field: ProfileField) -> Self {
        Self::new(Namespace::Profile, field.name())
    }

    /// A profile preference.
    pub fn preference(name: &str) -> Self {
        Self::new(Namespace::Preference, name)
    }

    /// An application key.
    pub fn app(name: &str) -> Self {
        Self::new(Namespace::App, name)
    }

    /// Checks the name, and `value` against the key's bound. The same check
    /// runs on local edits and on received entries, on every device.
    pub fn check(&self, value: Option<&[u8]>) -> Result<(), Error> {
        if self.name.is_empty() || self.name.len() > MAX_NAME_LEN {
            return Err(Error::Invalid("key name length"));
        }
        let Some(value) = value else {
            return Ok(());
        };
        let (max, text) = match (self.namespace, self.name.as_str()) {
            (Namespace::Profile, "display_name") => (MAX_DISPLAY_NAME_LEN, true),
            (Namespace::Profile, "bio") => (MAX_BIO_LEN, true),
            (Namespace::Profile, "image") => (MAX_IMAGE_LEN, false),
            _ => (MAX_VALUE_LEN, false),
        };
        if value.len() > max {
            return Err(Error::Invalid("value too long for its key"));
        }
        if text && std::str::from_utf8(value).is_err() {
            return Err(Error::Invalid("profile text is not UTF-8"));
        }
        Ok(())
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.namespace {
            Namespace::Profile => write!(f, "profile.{}", self.name),
            Namespace::Preference => write!(f, "pref.{}", self.name),
            Namespace::App => write!(f, "app.{}", self.name),
            Namespace::Other(n) => write!(f, "ns{n}.{}", self.name),
        }
    }
}
