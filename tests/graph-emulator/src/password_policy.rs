//! Entra ID's cloud password policy, as a reset through Graph meets it: 8 to 256 characters,
//! three of four classes (lowercase, uppercase, digits, symbols), only ASCII letters, digits,
//! the listed symbols and space, and no banned password; a user whose `passwordPolicies` holds
//! `DisableStrongPassword` is held only to the length and the character set.
//!
//! Banned passwords are matched the way Microsoft Entra Password Protection normalises: lowercase,
//! then `0→o`, `1→l`, `$→s`, `@→a`, then a case-insensitive substring match (the real service
//! also scores fuzzy matches; the emulator is stricter and simpler).

/// The symbols Entra accepts in a password (plus space).
const SYMBOLS: &str = "@#$%^&*-_!+=[]{}|\\:',.?/`~\"();<> ";

/// Banned terms when a test names none.
pub const DEFAULT_BANNED_PASSWORDS: &[&str] = &["password", "welcome", "latchkey", "qwerty"];

/// Why a password was refused (Graph's answer is the same for every reason).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    Length,
    Character,
    Classes,
    Banned,
}

/// Checks `password` against the policy; `strong_disabled` for `DisableStrongPassword`.
pub(crate) fn check(
    password: &str,
    strong_disabled: bool,
    banned: &[String],
) -> Result<(), Refusal> {
    let length = password.chars().count();
    let minimum = if strong_disabled { 1 } else { 8 };
    if length < minimum || length > 256 {
        return Err(Refusal::Length);
    }
    if !password
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || SYMBOLS.contains(c))
    {
        return Err(Refusal::Character);
    }
    if strong_disabled {
        return Ok(());
    }
    let classes = [
        password.chars().any(|c| c.is_ascii_lowercase()),
        password.chars().any(|c| c.is_ascii_uppercase()),
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| SYMBOLS.contains(c)),
    ];
    if classes.iter().filter(|&&present| present).count() < 3 {
        return Err(Refusal::Classes);
    }
    let normalised = normalise(password);
    if banned
        .iter()
        .map(|term| normalise(term))
        .any(|term| !term.is_empty() && normalised.contains(&term))
    {
        return Err(Refusal::Banned);
    }
    Ok(())
}

fn normalise(text: &str) -> String {
    text.to_lowercase()
        .chars()
        .map(|c| match c {
            '0' => 'o',
            '1' => 'l',
            '$' => 's',
            '@' => 'a',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn banned() -> Vec<String> {
        DEFAULT_BANNED_PASSWORDS
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn the_cloud_policy() {
        let b = banned();
        assert_eq!(check("Qx7-a1b2-Zk9", false, &b), Ok(()));
        assert_eq!(check("Ab1!", false, &b), Err(Refusal::Length));
        assert_eq!(check(&"Ab1!".repeat(65), false, &b), Err(Refusal::Length));
        assert_eq!(check("abcdefgh12", false, &b), Err(Refusal::Classes));
        assert_eq!(check("Abcdefgh12 ", false, &b), Ok(()));
        assert_eq!(check("Ünïcode-Pass1", false, &b), Err(Refusal::Character));
        assert_eq!(check("Abc\tdefg12", false, &b), Err(Refusal::Character));
        assert_eq!(check("MyPassword123!", false, &b), Err(Refusal::Banned));
        assert_eq!(check("P@$$w0rd-2026", false, &b), Err(Refusal::Banned));
        assert_eq!(check("xWELCOME-9x", false, &b), Err(Refusal::Banned));
        assert_eq!(check("Latchkey#2026", false, &b), Err(Refusal::Banned));
    }

    #[test]
    fn disable_strong_password_keeps_only_length_and_characters() {
        let b = banned();
        assert_eq!(check("abc", true, &b), Ok(()));
        assert_eq!(check("password", true, &b), Ok(()));
        assert_eq!(check("", true, &b), Err(Refusal::Length));
        assert_eq!(check("héllo", true, &b), Err(Refusal::Character));
    }
}
