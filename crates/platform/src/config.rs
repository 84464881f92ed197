//! Layered configuration: code defaults < optional TOML file < environment.
//!
//! Every setting has one name, its environment variable (`PORT`,
//! `DATABASE_URL`, ...). The file (`MESHWORK_CONFIG=path`) uses the same names
//! in lowercase (`port = 8001`). The environment is an injectable map so tests
//! never touch the process environment. Parsing is strict and every error
//! names the setting and where its value came from, so a bad deployment fails
//! before any port is bound.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// The environment variable naming the optional configuration file.
pub const CONFIG_FILE_VAR: &str = "MESHWORK_CONFIG";

/// The process exit code for invalid configuration (`EX_USAGE`).
pub const EXIT_INVALID_CONFIG: i32 = 64;

/// One documented setting: its name and what it does.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    pub name: &'static str,
    pub help: &'static str,
}

/// The environment a process was started with, or one a test made up.
#[derive(Debug, Clone, Default)]
pub struct Env(HashMap<String, String>);

impl Env {
    /// The process environment (variables that are not valid UTF-8 are skipped).
    pub fn from_process() -> Self {
        Self(std::env::vars().collect())
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        Self(pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// Where a setting's value came from; named in error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File(PathBuf),
    Environment,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(path) => write!(f, "from {}", path.display()),
            Origin::Environment => f.write_str("from the environment"),
        }
    }
}

/// A configuration error; its message names the setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid {name} ({origin}): {reason}")]
    Invalid { name: String, origin: Origin, reason: String },
    #[error("{name} is required: {reason}")]
    Missing { name: String, reason: String },
    #[error("cannot read the configuration file {path} ({CONFIG_FILE_VAR}): {reason}")]
    File { path: PathBuf, reason: String },
    #[error("unknown setting `{key}` in {path}; known settings: {known}")]
    UnknownKey { key: String, path: PathBuf, known: String },
}

/// A secret value (a URL with a password, a key): never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The secret itself; call sites that use it are easy to find.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// The raw values of every setting after layering, ready for typed parsing.
#[derive(Debug, Clone, Default)]
pub struct Layers {
    values: HashMap<String, (String, Origin)>,
}

impl Layers {
    /// Layers the file named by `MESHWORK_CONFIG` (if any) under `env`.
    /// Keys in the file must be known settings (lowercase); a typo fails.
    pub fn load(env: &Env, known: &[Setting]) -> Result<Self, ConfigError> {
        let mut values = HashMap::new();
        if let Some(path) = env.get(CONFIG_FILE_VAR).filter(|p| !p.is_empty()) {
            for (key, value) in read_file(Path::new(path), known)? {
                values.insert(key, (value, Origin::File(PathBuf::from(path))));
            }
        }
        for setting in known {
            if let Some(value) = env.get(setting.name) {
                values.insert(setting.name.to_owned(), (value.to_owned(), Origin::Environment));
            }
        }
        Ok(Self { values })
    }

    /// The raw value, if set anywhere. An empty value counts as unset, the
    /// way shells and compose files commonly clear a variable.
    pub fn raw(&self, name: &str) -> Option<(&str, &Origin)> {
        self.values
            .get(name)
            .filter(|(value, _)| !value.trim().is_empty())
            .map(|(value, origin)| (value.trim(), origin))
    }

    /// Parses the setting with `parse`, or returns `None` when it is unset.
    pub fn parse_with<T>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        match self.raw(name) {
            None => Ok(None),
            Some((value, origin)) => parse(value).map(Some).map_err(|reason| ConfigError::Invalid {
                name: name.to_owned(),
                origin: origin.clone(),
                reason,
            }),
        }
    }

    /// Parses the setting with its `FromStr`, falling back to `default`.
    pub fn parse_or<T>(&self, name: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        Ok(self.parse_with(name, |value| value.parse::<T>().map_err(|e| e.to_string()))?.unwrap_or(default))
    }

    pub fn string(&self, name: &str) -> Option<String> {
        self.raw(name).map(|(value, _)| value.to_owned())
    }

    /// A URL whose scheme must be one of `schemes` (`postgres`, `amqp`, ...).
    pub fn url(&self, name: &str, schemes: &[&str]) -> Result<Option<Secret<String>>, ConfigError> {
        self.parse_with(name, |value| {
            let scheme = value
                .split_once("://")
                .map(|(scheme, _)| scheme)
                .ok_or_else(|| format!("expected a URL like {}://host", schemes[0]))?;
            if !schemes.contains(&scheme) {
                return Err(format!("scheme must be one of {}, not `{scheme}`", schemes.join(", ")));
            }
            Ok(Secret::new(value.to_owned()))
        })
    }

    /// A duration: a number of seconds (`30`) or with a unit (`500ms`, `2s`, `1m`).
    pub fn duration_or(&self, name: &str, default: Duration) -> Result<Duration, ConfigError> {
        Ok(self.parse_with(name, parse_duration)?.unwrap_or(default))
    }

    /// A duration longer than zero (a timeout or a period of zero would
    /// fire at once, every time), falling back to `default`.
    pub fn positive_duration_or(&self, name: &str, default: Duration) -> Result<Duration, ConfigError> {
        let duration = self.parse_with(name, |value| match parse_duration(value)? {
            duration if duration.is_zero() => Err("must be longer than zero".to_owned()),
            duration => Ok(duration),
        })?;
        Ok(duration.unwrap_or(default))
    }

    /// A whole number of at least 1 (a limit of zero would refuse
    /// everything), falling back to `default`.
    pub fn count_or<T>(&self, name: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr + From<u8> + PartialEq,
    {
        let count = self.parse_with(name, |value| match value.parse::<T>() {
            Ok(count) if count == T::from(0) => Err("must be at least 1".to_owned()),
            Ok(count) => Ok(count),
            Err(_) => Err("expected a whole number".to_owned()),
        })?;
        Ok(count.unwrap_or(default))
    }
}

fn read_file(path: &Path, known: &[Setting]) -> Result<BTreeMap<String, String>, ConfigError> {
    let file_error = |reason: String| ConfigError::File { path: path.to_owned(), reason };
    let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| file_error(e.to_string()))?;
    let mut values = BTreeMap::new();
    for (key, value) in table {
        let Some(setting) = known.iter().find(|s| s.name.eq_ignore_ascii_case(&key)) else {
            return Err(ConfigError::UnknownKey {
                key,
                path: path.to_owned(),
                known: known.iter().map(|s| s.name.to_ascii_lowercase()).collect::<Vec<_>>().join(", "),
            });
        };
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                return Err(file_error(format!(
                    "`{key}` must be a string, number or boolean, not {}",
                    other.type_str()
                )));
            }
        };
        values.insert(setting.name.to_owned(), value);
    }
    Ok(values)
}

/// Parses `30`, `30s`, `500ms`, `2m` into a duration.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let split = value.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse().map_err(|_| format!("expected a duration like 30s or 500ms, got `{value}`"))?;
    let seconds = match unit.trim() {
        "" | "s" => number,
        "ms" => number / 1000.0,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        other => return Err(format!("unknown duration unit `{other}` (use ms, s, m or h)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[Setting] = &[
        Setting { name: "PORT", help: "" },
        Setting { name: "DATABASE_URL", help: "" },
        Setting { name: "GRACE", help: "" },
    ];

    fn file_with(contents: &str) -> tempfile_path::TempPath {
        tempfile_path::TempPath::with(contents)
    }

    /// A file under the system temp dir, removed on drop (no extra crate).
    mod tempfile_path {
        use std::path::PathBuf;
        use std::sync::atomic::{AtomicU32, Ordering};

        pub struct TempPath(pub PathBuf);

        impl TempPath {
            pub fn with(contents: &str) -> Self {
                static NEXT: AtomicU32 = AtomicU32::new(0);
                let name =
                    format!("meshwork-config-{}-{}.toml", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
                let path = std::env::temp_dir().join(name);
                std::fs::write(&path, contents).unwrap();
                Self(path)
            }
        }

        impl Drop for TempPath {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    fn env_with_file(path: &tempfile_path::TempPath, more: &[(&str, &str)]) -> Env {
        let mut pairs = vec![(CONFIG_FILE_VAR.to_owned(), path.0.display().to_string())];
        pairs.extend(more.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Env::from_pairs(pairs)
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let layers = Layers::load(&Env::default(), KNOWN).unwrap();
        assert_eq!(layers.parse_or("PORT", 8001u16).unwrap(), 8001);
    }

    #[test]
    fn file_overrides_defaults() {
        let file = file_with("port = 9001\n");
        let layers = Layers::load(&env_with_file(&file, &[]), KNOWN).unwrap();
        assert_eq!(layers.parse_or("PORT", 8001u16).unwrap(), 9001);
    }

    #[test]
    fn environment_overrides_file() {
        let file = file_with("port = 9001\n");
        let layers = Layers::load(&env_with_file(&file, &[("PORT", "9002")]), KNOWN).unwrap();
        assert_eq!(layers.parse_or("PORT", 8001u16).unwrap(), 9002);
    }

    #[test]
    fn empty_environment_value_counts_as_unset() {
        let layers = Layers::load(&Env::from_pairs([("PORT", " ")]), KNOWN).unwrap();
        assert_eq!(layers.parse_or("PORT", 8001u16).unwrap(), 8001);
    }

    #[test]
    fn invalid_value_names_the_setting_and_its_origin() {
        let layers = Layers::load(&Env::from_pairs([("PORT", "eighty")]), KNOWN).unwrap();
        let message = layers.parse_or("PORT", 8001u16).unwrap_err().to_string();
        assert!(message.contains("PORT"), "{message}");
        assert!(message.contains("from the environment"), "{message}");

        let file = file_with("port = 70000\n");
        let layers = Layers::load(&env_with_file(&file, &[]), KNOWN).unwrap();
        let message = layers.parse_or("PORT", 8001u16).unwrap_err().to_string();
        assert!(message.contains("PORT") && message.contains(&file.0.display().to_string()), "{message}");
    }

    #[test]
    fn url_with_the_wrong_scheme_is_refused() {
        let layers = Layers::load(&Env::from_pairs([("DATABASE_URL", "mysql://localhost/db")]), KNOWN).unwrap();
        let message = layers.url("DATABASE_URL", &["postgres", "postgresql"]).unwrap_err().to_string();
        assert!(message.contains("DATABASE_URL") && message.contains("mysql"), "{message}");

        let layers = Layers::load(&Env::from_pairs([("DATABASE_URL", "localhost")]), KNOWN).unwrap();
        assert!(layers.url("DATABASE_URL", &["postgres"]).is_err());
    }

    #[test]
    fn url_secret_is_not_printed() {
        let layers = Layers::load(&Env::from_pairs([("DATABASE_URL", "postgres://u:hunter2@h/db")]), KNOWN).unwrap();
        let url = layers.url("DATABASE_URL", &["postgres"]).unwrap().unwrap();
        assert_eq!(url.expose(), "postgres://u:hunter2@h/db");
        assert!(!format!("{url:?}").contains("hunter2"));
    }

    #[test]
    fn unknown_key_in_file_is_refused() {
        let file = file_with("prot = 9001\n");
        let message = Layers::load(&env_with_file(&file, &[]), KNOWN).unwrap_err().to_string();
        assert!(message.contains("`prot`") && message.contains("port"), "{message}");
    }

    #[test]
    fn unreadable_or_malformed_file_is_refused() {
        let env = Env::from_pairs([(CONFIG_FILE_VAR, "/nonexistent/meshwork.toml")]);
        let message = Layers::load(&env, KNOWN).unwrap_err().to_string();
        assert!(message.contains("/nonexistent/meshwork.toml"), "{message}");

        let file = file_with("port = [1, 2\n");
        assert!(matches!(Layers::load(&env_with_file(&file, &[]), KNOWN), Err(ConfigError::File { .. })));

        let file = file_with("port = [1, 2]\n");
        let message = Layers::load(&env_with_file(&file, &[]), KNOWN).unwrap_err().to_string();
        assert!(message.contains("`port`"), "{message}");
    }

    #[test]
    fn durations_parse_with_and_without_units() {
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 weeks").is_err());
        let layers = Layers::load(&Env::from_pairs([("GRACE", "-1")]), KNOWN).unwrap();
        assert!(layers.duration_or("GRACE", Duration::ZERO).is_err());
    }
}
