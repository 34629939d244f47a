//! Diagnostics: catalog rule ids, severities and located messages.

use crate::ast::Span;

/// A rule of the constraint catalog (`spec/ane.md` §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    C1,
    C2,
    C3,
    C4,
    C5,
    C6,
    C7,
    C8,
    C9,
    C10,
    C11,
    C12,
    C13,
    C14,
    C15,
    C16,
    C17,
    C18,
    C19,
    C20,
    C21,
    C22,
    C23,
    C24,
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

/// How serious a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

/// One finding, with its location, the op it concerns and the catalog rule it breaks (if any).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub span: Span,
    pub rule: Option<Rule>,
    /// The op or value the finding is about, e.g. `conv "y"`.
    pub subject: String,
    pub message: String,
}

impl Diagnostic {
    /// An error diagnostic.
    pub fn error(
        span: Span,
        rule: Option<Rule>,
        subject: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            severity: Severity::Error,
            span,
            rule,
            subject: subject.into(),
            message: message.into(),
        }
    }

    /// A warning diagnostic.
    pub fn warning(
        span: Span,
        rule: Option<Rule>,
        subject: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(span, rule, subject, message)
        }
    }
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sev = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        write!(f, "{}: {sev}", self.span)?;
        if let Some(rule) = self.rule {
            write!(f, " [{rule}]")?;
        }
        if !self.subject.is_empty() {
            write!(f, " {}:", self.subject)?;
        }
        write!(f, " {}", self.message)
    }
}

/// A list of diagnostics, displayed one per line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// True when any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(|d| d.severity == Severity::Error)
    }

    /// The errors only.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| d.severity == Severity::Error)
    }

    /// True when some diagnostic cites `rule`.
    pub fn cites(&self, rule: Rule) -> bool {
        self.0.iter().any(|d| d.rule == Some(rule))
    }
}

impl std::fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}
