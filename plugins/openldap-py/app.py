"""Latchkey's OpenLDAP connector, in Python (componentize-py).

The same directory logic as the Rust `openldap` plugin, written against the same WIT contract
(wit/connector.wit, world `plugin`) to show that the contract is language-neutral. The host
opens an LDAP session over LDAPS or StartTLS, verifies the server's certificate and binds as the
service account; this plugin never sees the bind password. Every call runs in a fresh instance,
so nothing is kept between calls: accounts are found again by their entryUUID each time, and the
paging cursor carries its own position.

User changes (`change-password`) are not implemented: `describe` does not declare them and the
function answers `unsupported`.
"""

import time
from typing import List, Optional

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import config, ldap, log
from wit_world.imports.types import (
    Account,
    AccountPage,
    AccountQuery,
    Check,
    CheckStatus,
    ConnectorError_Denied,
    ConnectorError_Internal,
    ConnectorError_InvalidConfig,
    ConnectorError_NotFound,
    ConnectorError_Policy,
    ConnectorError_Unavailable,
    ConnectorError_Unsupported,
    ErrorInfo,
    Features,
    Info,
    MatchMode,
    PasswordPolicy,
    Report,
    SetOptions,
    SetOutcome,
    SetStatus,
    Step_HistoryHint,
    Step_MustChange,
    Step_SetPassword,
    Step_Unlock,
    StepOutcome,
    Violation_InHistory,
    Violation_RejectedByDirectory,
    Violation_TooLong,
    Violation_TooShort,
    Violation_TooYoung,
)

ID = "openldap-py"
VERSION = "0.1.0"

USER_FILTER = "(objectClass=inetOrgPerson)"
ID_ATTRIBUTE = "entryUUID"
USERNAME_ATTRIBUTE = "uid"
DISPLAY_NAME_ATTRIBUTE = "cn"
MAIL_ATTRIBUTE = "mail"
STATE_ATTRIBUTES = ["pwdAccountLockedTime", "pwdChangedTime", "pwdPolicySubentry", "pwdReset"]
ACCOUNT_ATTRIBUTES = [ID_ATTRIBUTE, USERNAME_ATTRIBUTE, DISPLAY_NAME_ATTRIBUTE, MAIL_ATTRIBUTE] + STATE_ATTRIBUTES
POLICY_ATTRIBUTES = [
    "pwdAttribute", "pwdMinLength", "pwdMaxLength", "pwdInHistory", "pwdMinAge", "pwdMaxAge",
    "pwdCheckQuality", "pwdMustChange", "pwdLockout", "pwdMaxFailure",
]
# pwdAccountLockedTime of an account an administrator disabled for good.
PERMANENT_LOCK = "000001010000Z"
PPOLICY_CONTROL = "1.3.6.1.4.1.42.2.27.8.5.1"
U32_MAX = 0xFFFFFFFF
MAX_PAGE = 1000
MAX_SCOPE = 20000
READ_PAGE = 500
CURSOR_PREFIX = "uid1."

RC_SIZE_LIMIT_EXCEEDED = 4
RC_NO_SUCH_ATTRIBUTE = 16
RC_CONSTRAINT_VIOLATION = 19
RC_NO_SUCH_OBJECT = 32
RC_INSUFFICIENT_ACCESS = 50
RC_BUSY = 51
RC_UNAVAILABLE = 52

CONFIG_SCHEMA = """{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "OpenLDAP (ppolicy, Python)",
  "type": "object",
  "required": ["url", "base_dn", "bind_dn"],
  "properties": {
    "url": {
      "type": "string",
      "title": "Server URL",
      "description": "The LDAP server: ldaps://ldap.corp.example:636, or ldap://ldap.corp.example:389 with StartTLS turned on. Unencrypted LDAP is refused.",
      "pattern": "^ldaps?://",
      "examples": ["ldaps://ldap.corp.example:636"]
    },
    "starttls": {
      "type": "boolean",
      "title": "Use StartTLS",
      "description": "Upgrade an ldap:// connection to TLS with StartTLS before binding. Leave off for ldaps:// URLs.",
      "default": false
    },
    "base_dn": {
      "type": "string",
      "title": "Users' base DN",
      "description": "Where users (inetOrgPerson entries) are searched, with everything below it, e.g. ou=people,dc=corp,dc=example.",
      "minLength": 1
    },
    "bind_dn": {
      "type": "string",
      "title": "Service account DN",
      "description": "The DN Latchkey binds as. It needs write access to users' userPassword and pwdReset (and pwdAccountLockedTime for unlocking), and read access to users and to the password policy entries.",
      "minLength": 1
    },
    "ca_file": {
      "type": "string",
      "title": "CA certificate file",
      "description": "Path, on the Latchkey server, of a PEM file with the certificate authority that issued the LDAP server's certificate. Without it, the server's own trusted authorities are used."
    },
    "policy_dn": {
      "type": "string",
      "title": "Default password policy DN",
      "description": "The pwdPolicy entry the server's ppolicy_default names, e.g. cn=default,ou=policies,dc=corp,dc=example. A user's own pwdPolicySubentry takes precedence."
    },
    "timeout_ms": {
      "type": "integer",
      "title": "Timeout (milliseconds)",
      "description": "How long to wait for the server to connect or answer one operation.",
      "minimum": 1
    }
  }
}"""

SECRETS_SCHEMA = """{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "OpenLDAP (ppolicy, Python) secrets",
  "type": "object",
  "required": ["bind_password"],
  "properties": {
    "bind_password": {
      "type": "string",
      "title": "Service account password",
      "description": "The password of the service account in bind_dn. Latchkey stores it encrypted and uses it only to bind; it cannot be read back.",
      "writeOnly": true,
      "minLength": 1
    }
  }
}"""


# ---------------------------------------------------------------------------------------------
# Errors


def info(message: str, text: str = "") -> ErrorInfo:
    return ErrorInfo(message, text or None)


def message_of(error) -> str:
    value = error.value
    if isinstance(value, ErrorInfo):
        return value.message
    return "the password policy refused the password"


def from_host(error) -> object:
    """A connector error for the host's ldap-error."""
    kind = type(error).__name__.split("_", 1)[-1]
    text = getattr(error, "value", "")
    if kind == "Unavailable":
        return ConnectorError_Unavailable(info(
            f"could not reach the LDAP server ({text}); try again later, and check host, port "
            "and firewall if it persists"))
    if kind == "Timeout":
        return ConnectorError_Unavailable(info(
            f"the LDAP server did not answer in time ({text}); try again later, or raise timeout_ms"))
    if kind == "Tls":
        return ConnectorError_InvalidConfig(info(
            f"TLS with the LDAP server failed ({text}): check ca_file, the names in the server's "
            "certificate, and starttls for ldap:// URLs"))
    if kind == "NotConfigured":
        return ConnectorError_InvalidConfig(info(text))
    if kind == "BindFailed":
        return ConnectorError_Denied(info(
            "the LDAP server refused the service account's bind: check bind_dn and the "
            "bind_password secret", text))
    return ConnectorError_Internal(info(
        f"the host refused the connector's LDAP request ({text}); this is a bug in the "
        "openldap-py plugin or a host limit"))


def refused(what: str, code: int, text: str):
    """A connector error for a non-zero LDAP result code."""
    if code == RC_INSUFFICIENT_ACCESS:
        return ConnectorError_Denied(info(
            f"the service account lacks the right for {what}: grant it access in the server's ACL",
            text))
    if code == RC_NO_SUCH_OBJECT:
        return ConnectorError_NotFound(info(
            "the directory has no such entry; it may have been deleted or renamed", text))
    if code in (RC_BUSY, RC_UNAVAILABLE):
        return ConnectorError_Unavailable(info(
            "the LDAP server is busy or unavailable; try again later", text))
    if code in (8, 13):
        return ConnectorError_InvalidConfig(info(
            "the server requires an encrypted connection: use ldaps:// or starttls", text))
    return ConnectorError_Internal(info(
        f"the LDAP server refused {what} (LDAP result {code}); its own words are in the audit",
        text))


# ---------------------------------------------------------------------------------------------
# Configuration, filters, entries, times


class Settings:
    def __init__(self) -> None:
        base_dn = (config.get("base_dn") or "").strip()
        if not base_dn:
            raise Err(ConnectorError_InvalidConfig(info(
                "`base_dn` is missing or empty; set it to the DN under which users live")))
        self.base_dn = base_dn
        policy_dn = (config.get("policy_dn") or "").strip()
        self.policy_dn: Optional[str] = policy_dn or None


def escape(value: str) -> str:
    """RFC 4515 escaping of a filter value: `*()\\`, NUL and every non-ASCII byte as \\XX."""
    out = []
    for byte in value.encode("utf-8"):
        if byte in b"*()\\" or byte < 0x20 or byte > 0x7E:
            out.append("\\%02x" % byte)
        else:
            out.append(chr(byte))
    return "".join(out)


def any_of(clauses: List[str]) -> str:
    return clauses[0] if len(clauses) == 1 else "(|" + "".join(clauses) + ")"


def users_filter(clause: Optional[str]) -> str:
    return USER_FILTER if clause is None else f"(&{USER_FILTER}{clause})"


def looks_like_uuid(text: str) -> bool:
    groups = text.split("-")
    return [len(g) for g in groups] == [8, 4, 4, 4, 12] and all(
        c in "0123456789abcdefABCDEF" for g in groups for c in g)


class DirEntry:
    def __init__(self, entry) -> None:
        self.dn = entry.dn
        self.values = {}
        for attribute in entry.attributes:
            self.values.setdefault(attribute.name.lower(), []).extend(attribute.values)

    def first(self, name: str) -> Optional[str]:
        values = self.values.get(name.lower())
        return values[0] if values else None

    def boolean(self, name: str) -> Optional[bool]:
        value = self.first(name)
        if value is None:
            return None
        return value.strip().upper() == "TRUE"

    def count(self, name: str) -> int:
        value = self.first(name)
        try:
            return max(int(value.strip()), 0) if value is not None else 0
        except ValueError:
            return 0


def days_from_civil(year: int, month: int, day: int) -> int:
    year = year - 1 if month <= 2 else year
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def parse_generalized_time(text: Optional[str]) -> Optional[int]:
    """GeneralizedTime (`20261130105815Z`, `...Z` with fractions, or `+hhmm`) as unix seconds."""
    if text is None:
        return None
    text = text.strip()
    offset = 0
    if text.endswith("Z"):
        body = text[:-1]
    else:
        at = max(text.rfind("+"), text.rfind("-"))
        zone = text[at:]
        if at < 0 or len(zone) != 5 or not zone[1:].isdigit():
            return None
        sign = -1 if zone[0] == "-" else 1
        offset = sign * (int(zone[1:3]) * 60 + int(zone[3:5])) * 60
        body = text[:at]
    body = body.replace(",", ".").split(".")[0]
    if len(body) not in (10, 12, 14) or not body.isdigit():
        return None
    year, month, day, hour = int(body[0:4]), int(body[4:6]), int(body[6:8]), int(body[8:10])
    minute = int(body[10:12]) if len(body) >= 12 else 0
    second = int(body[12:14]) if len(body) == 14 else 0
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour <= 23 and minute <= 59 and second <= 60):
        return None
    return days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offset


def unix_now() -> int:
    return int(time.time())


# ---------------------------------------------------------------------------------------------
# The directory


class Directory:
    def __init__(self) -> None:
        try:
            self.session = ldap.open()
        except Err as error:
            raise Err(from_host(error.value))

    def search_raw(self, base: str, scope, filter: str, attributes: List[str], size_limit: int = 0,
                   page_size: int = 0, cookie: Optional[bytes] = None):
        """(entries, next cookie, code, text); host errors as connector errors."""
        request = ldap.SearchRequest(base, scope, filter, attributes, [], size_limit, page_size,
                                     cookie, [])
        try:
            result = self.session.search(request)
        except Err as error:
            raise Err(from_host(error.value))
        code = result.outcome.code
        if code not in (0, RC_SIZE_LIMIT_EXCEEDED):
            return [], None, code, result.outcome.text
        return ([DirEntry(e) for e in result.entries], result.next_cookie or None, 0, "")

    def read(self, dn: str, attributes: List[str]) -> Optional[DirEntry]:
        entries, _, code, text = self.search_raw(dn, ldap.Scope.BASE, "(objectClass=*)", attributes)
        if code == RC_NO_SUCH_OBJECT:
            return None
        if code != 0:
            raise Err(refused("a read", code, text))
        return entries[0] if entries else None

    def modify(self, what: str, dn: str, changes, controls):
        try:
            result = self.session.modify(dn, changes, controls)
        except Err as error:
            raise Err(from_host(error.value))
        if result.code != 0:
            log.log(log.Level.INFO,
                    f"{what} on {dn}: the LDAP server refused with result {result.code}: {result.text}")
        return result


def scope_error(settings: Settings, code: int, text: str):
    if code == RC_NO_SUCH_OBJECT:
        return ConnectorError_InvalidConfig(info(
            f"base_dn {settings.base_dn} does not exist on the LDAP server; correct it in the "
            "connector's configuration", text))
    return refused("a search for users", code, text)


class User:
    def __init__(self, entry: DirEntry) -> None:
        def unreadable(attribute: str):
            return Err(ConnectorError_Denied(info(
                f"the service account cannot read {attribute} of {entry.dn}: grant it read access "
                "to the users, operational attributes included")))

        uid = entry.first(ID_ATTRIBUTE)
        if uid is None:
            raise unreadable(ID_ATTRIBUTE)
        username = entry.first(USERNAME_ATTRIBUTE)
        if username is None:
            raise unreadable(USERNAME_ATTRIBUTE)
        locked = entry.first("pwdAccountLockedTime")
        self.dn = entry.dn
        self.account = Account(
            id=uid,
            username=username,
            principal_name=None,
            display_name=entry.first(DISPLAY_NAME_ATTRIBUTE),
            email=entry.first(MAIL_ATTRIBUTE),
            location=entry.dn,
            enabled=locked != PERMANENT_LOCK,
            locked_out=locked is not None,
            synced_from_on_premises=False,
        )
        self.changed_at = parse_generalized_time(entry.first("pwdChangedTime"))
        self.policy_subentry = entry.first("pwdPolicySubentry")
        self.locked = locked is not None
        self.pwd_reset = bool(entry.boolean("pwdReset"))

    def key(self):
        name = self.account.username
        return (name.lower(), name, self.account.id)


def not_found(settings: Settings, account_id: str):
    return Err(ConnectorError_NotFound(info(
        f"no user with {ID_ATTRIBUTE} {account_id} under {settings.base_dn}; it may have been "
        "deleted or moved out of scope")))


def resolve(directory: Directory, settings: Settings, account_id: str) -> User:
    account_id = account_id.strip()
    if not looks_like_uuid(account_id):
        raise not_found(settings, account_id)
    entries, _, code, text = directory.search_raw(
        settings.base_dn, ldap.Scope.SUBTREE,
        users_filter(f"({ID_ATTRIBUTE}={escape(account_id)})"), ACCOUNT_ATTRIBUTES, size_limit=2)
    if code != 0:
        raise Err(scope_error(settings, code, text))
    if not entries:
        raise not_found(settings, account_id)
    if len(entries) > 1:
        raise Err(ConnectorError_InvalidConfig(info(
            f"more than one user has {ID_ATTRIBUTE} {account_id}")))
    return User(entries[0])


def open_and_resolve(account: Account):
    settings = Settings()
    directory = Directory()
    return directory, settings, resolve(directory, settings, account.id)


# ---------------------------------------------------------------------------------------------
# Finding accounts


def query_clause(query: AccountQuery):
    """None: nothing matches; "": everything; otherwise a filter."""
    text = query.text.strip()
    if not text:
        return None if query.mode == MatchMode.EXACT else ""
    value = escape(text)
    if query.mode == MatchMode.EXACT:
        clauses = [f"({USERNAME_ATTRIBUTE}={value})", f"({MAIL_ATTRIBUTE}={value})"]
    else:
        pattern = f"{value}*" if query.mode == MatchMode.PREFIX else f"*{value}*"
        clauses = [f"({a}={pattern})" for a in
                   (USERNAME_ATTRIBUTE, MAIL_ATTRIBUTE, DISPLAY_NAME_ATTRIBUTE)]
    if looks_like_uuid(text):
        clauses.append(f"({ID_ATTRIBUTE}={value})")
    return any_of(clauses)


def encode_cursor(key) -> str:
    _, username, account_id = key
    return CURSOR_PREFIX + username.encode().hex() + "." + account_id.encode().hex()


def decode_cursor(cursor: str):
    try:
        if not cursor.startswith(CURSOR_PREFIX) or len(cursor) > 2048:
            raise ValueError
        username, account_id = cursor[len(CURSOR_PREFIX):].split(".")
        username = bytes.fromhex(username).decode()
        account_id = bytes.fromhex(account_id).decode()
        return (username.lower(), username, account_id)
    except ValueError:
        raise Err(ConnectorError_Internal(info(
            "the paging cursor was not made by this connector (or is damaged); start the search "
            "again from the first page")))


def find(query: AccountQuery, cursor: Optional[str], limit: int) -> AccountPage:
    settings = Settings()
    after = decode_cursor(cursor) if cursor is not None else None
    clause = query_clause(query)
    if clause is None or limit == 0:
        return AccountPage([], None)
    directory = Directory()
    search_filter = users_filter(clause or None)
    users = []
    cookie = None
    while True:
        entries, cookie, code, text = directory.search_raw(
            settings.base_dn, ldap.Scope.SUBTREE, search_filter, ACCOUNT_ATTRIBUTES,
            page_size=READ_PAGE, cookie=cookie)
        if code != 0:
            raise Err(scope_error(settings, code, text))
        users.extend(User(entry) for entry in entries)
        if len(users) > MAX_SCOPE:
            raise Err(ConnectorError_Unsupported(info(
                f"more than {MAX_SCOPE} users under {settings.base_dn} match; this connector "
                "orders users itself to page through them, so narrow base_dn")))
        if not cookie:
            break
    keyed = sorted(((user.key(), user) for user in users), key=lambda pair: pair[0])
    if after is not None:
        keyed = [pair for pair in keyed if pair[0] > after]
    limit = min(limit, MAX_PAGE)
    page = keyed[:limit]
    next_cursor = encode_cursor(page[-1][0]) if len(keyed) > limit else None
    return AccountPage([user.account for _, user in page], next_cursor)


# ---------------------------------------------------------------------------------------------
# Policy


class EffectivePolicy:
    def __init__(self, policy: PasswordPolicy, dn: Optional[str], must_change: bool,
                 known: bool = True) -> None:
        self.policy = policy
        self.dn = dn
        self.must_change = must_change
        self.known = known


def no_policy(source: str) -> EffectivePolicy:
    return EffectivePolicy(
        PasswordPolicy(0, U32_MAX, None, None, False, False, 0, 0, None, 0, source), None, False)


def policy_from_entry(entry: DirEntry, how: str) -> EffectivePolicy:
    checks_quality = entry.count("pwdCheckQuality") > 0
    max_length = min(entry.count("pwdMaxLength"), U32_MAX)
    max_age = entry.count("pwdMaxAge")
    policy = PasswordPolicy(
        min_length=min(entry.count("pwdMinLength"), U32_MAX) if checks_quality else 0,
        max_length=max_length if checks_quality and max_length > 0 else U32_MAX,
        complexity=None,
        allowed_symbols=None,
        forbid_username=False,
        forbid_display_name=False,
        history_length=min(entry.count("pwdInHistory"), U32_MAX),
        min_age_seconds=entry.count("pwdMinAge"),
        max_age_seconds=max_age if max_age > 0 else None,
        lockout_threshold=min(entry.count("pwdMaxFailure"), U32_MAX)
        if entry.boolean("pwdLockout") else 0,
        source=f"ppolicy {entry.dn} ({how})",
    )
    return EffectivePolicy(policy, entry.dn, bool(entry.boolean("pwdMustChange")))


def effective_policy(directory: Directory, settings: Settings, user: User) -> EffectivePolicy:
    if user.policy_subentry:
        dn, how = user.policy_subentry, "the user's pwdPolicySubentry"
    elif settings.policy_dn:
        dn, how = settings.policy_dn, "the default policy_dn"
    else:
        return no_policy("no password policy (the user has no pwdPolicySubentry and the "
                         "connector has no policy_dn)")
    try:
        entry = directory.read(dn, POLICY_ATTRIBUTES)
    except Err as error:
        if not isinstance(error.value, ConnectorError_Denied):
            raise
        entry = None
    if entry is None or entry.first("pwdAttribute") is None:
        raise Err(ConnectorError_Denied(info(
            f"the password policy {dn} cannot be read by the service account (or does not "
            "exist): grant it read access to the policy entries, and check policy_dn")))
    return policy_from_entry(entry, how)


def too_young_seconds(min_age: int, changed_at: Optional[int], pwd_reset: bool,
                      now: int) -> Optional[int]:
    if min_age == 0 or pwd_reset or changed_at is None:
        return None
    left = min_age - max(now - changed_at, 0)
    return left if left > 0 else None


def violations(candidate: str, effective: EffectivePolicy, user: User) -> list:
    policy = effective.policy
    out = []
    # slapd's ppolicy counts bytes of the UTF-8 value.
    length = len(candidate.encode("utf-8"))
    if length < policy.min_length:
        out.append(Violation_TooShort(policy.min_length))
    if length > policy.max_length:
        out.append(Violation_TooLong(policy.max_length))
    left = too_young_seconds(policy.min_age_seconds, user.changed_at, user.pwd_reset, unix_now())
    if left is not None:
        out.append(Violation_TooYoung(left))
    return out


# ---------------------------------------------------------------------------------------------
# The ppolicy response control (draft-behera-ldap-password-policy), BER


def read_tlv(data: bytes):
    """(tag, contents, rest) or None."""
    if len(data) < 2 or data[0] & 0x1F == 0x1F:
        return None
    tag, first, rest = data[0], data[1], data[2:]
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or len(rest) < count:
            return None
        length = int.from_bytes(rest[:count], "big")
        rest = rest[count:]
    if len(rest) < length:
        return None
    return tag, rest[:length], rest[length:]


def ppolicy_error(value: Optional[bytes]) -> Optional[int]:
    """The `error` of a PasswordPolicyResponseValue, or None."""
    if not value:
        return None
    outer = read_tlv(value)
    if outer is None or outer[0] != 0x30:
        return None
    rest = outer[1]
    while rest:
        element = read_tlv(rest)
        if element is None:
            return None
        tag, contents, rest = element
        if tag == 0x81 and contents:
            return int.from_bytes(contents, "big")
    return None


PP_TOO_SHORT, PP_TOO_YOUNG, PP_IN_HISTORY, PP_TOO_LONG = 6, 7, 8, 9


def ppolicy_error_from_text(text: str) -> Optional[int]:
    lower = text.lower()
    if "too young" in lower or "changed too recently" in lower:
        return PP_TOO_YOUNG
    if "history" in lower or "not being changed from existing" in lower:
        return PP_IN_HISTORY
    if "too short" in lower:
        return PP_TOO_SHORT
    if "too long" in lower:
        return PP_TOO_LONG
    if "quality" in lower:
        return 5
    if "old password" in lower:
        return 4
    return None


def refusal(result, effective: EffectivePolicy, user: User):
    """The connector error for a refused reset."""
    control = next((c for c in result.controls if c.oid == PPOLICY_CONTROL), None)
    error = ppolicy_error(control.value) if control is not None else None
    if error is None and result.code == RC_CONSTRAINT_VIOLATION:
        error = ppolicy_error_from_text(result.text)
    if error is None:
        return refused("the reset of userPassword", result.code, result.text)
    policy = effective.policy
    if error == PP_TOO_SHORT:
        violation = (Violation_TooShort(policy.min_length) if effective.known else
                     Violation_RejectedByDirectory("the password is shorter than the directory's "
                                                   "password policy allows"))
    elif error == PP_TOO_LONG:
        violation = (Violation_TooLong(policy.max_length)
                     if effective.known and policy.max_length != U32_MAX else
                     Violation_RejectedByDirectory("the password is longer than the directory's "
                                                   "password policy allows"))
    elif error == PP_IN_HISTORY:
        violation = Violation_InHistory()
    elif error == PP_TOO_YOUNG:
        left = too_young_seconds(policy.min_age_seconds, user.changed_at, user.pwd_reset,
                                 unix_now())
        violation = Violation_TooYoung(max(left or policy.min_age_seconds, 1))
    elif error == 5:
        violation = Violation_RejectedByDirectory(
            "the directory's password quality check refused it")
    elif error in (3, 4):
        return ConnectorError_Denied(info(
            "the password policy does not let the service account reset this password "
            "(pwdAllowUserChange FALSE or pwdSafeModify TRUE): change the policy, or give the "
            "service account manage access to userPassword", result.text))
    elif error == 1:
        return ConnectorError_Denied(info(
            "the account is locked out; reset its password with unlock", result.text))
    else:
        violation = Violation_RejectedByDirectory(
            f"the directory's password policy refused it (ppolicy error {error})")
    return ConnectorError_Policy([violation])


# ---------------------------------------------------------------------------------------------
# Writes


def replace(name: str, values: List[str]):
    return ldap.Modification_Replace(ldap.BinaryAttribute(name, [v.encode() for v in values]))


def follow_up(directory: Directory, user: User, step, what: str, changes) -> StepOutcome:
    try:
        result = directory.modify(what, user.dn, changes, [])
    except Err as error:
        return StepOutcome(step, False, message_of(error.value))
    if result.code == 0:
        return StepOutcome(step, True, None)
    return StepOutcome(step, False, message_of(refused(what, result.code, result.text)))


def set_password(account: Account, password: str, options: SetOptions) -> SetOutcome:
    directory, settings, user = open_and_resolve(account)
    try:
        effective = effective_policy(directory, settings, user)
    except Err as error:
        # The server applies its policy either way: an unreadable one only leaves the
        # violations without numbers.
        log.log(log.Level.WARN,
                f"the password policy of {user.dn} could not be read: {message_of(error.value)}")
        effective = no_policy("unreadable")
        effective.known = False
        effective.must_change = True
    control = ldap.Control(PPOLICY_CONTROL, False, None)
    result = directory.modify("reset of userPassword", user.dn,
                              [replace("userPassword", [password])], [control])
    if result.code != 0:
        raise Err(refusal(result, effective, user))
    steps = [StepOutcome(Step_SetPassword(), True, None)]
    if options.enforce_history:
        history = effective.policy.history_length
        steps.append(StepOutcome(Step_HistoryHint(), True,
                                 f"ppolicy checks the account's last {history} passwords on this "
                                 "reset (the service account has write, not manage, access)")
                     if history > 0 else
                     StepOutcome(Step_HistoryHint(), False,
                                 "the account's password policy keeps no history (pwdInHistory "
                                 "is 0 or absent); Latchkey's own history applies"))
    if options.unlock:
        if not user.locked:
            steps.append(StepOutcome(Step_Unlock(), True,
                                     "the account was not locked (no pwdAccountLockedTime)"))
        else:
            delete = ldap.Modification_Delete(ldap.BinaryAttribute("pwdAccountLockedTime", []))
            result = directory.modify("unlock", user.dn, [delete], [])
            if result.code in (0, RC_NO_SUCH_ATTRIBUTE):
                steps.append(StepOutcome(Step_Unlock(), True, None if result.code == 0 else
                                         "the password write cleared the lock"))
            else:
                steps.append(StepOutcome(Step_Unlock(), False, message_of(
                    refused("unlock (delete pwdAccountLockedTime)", result.code, result.text))))
    if options.must_change_at_next_logon:
        step = follow_up(directory, user, Step_MustChange(),
                         "must change at next logon (pwdReset: TRUE)",
                         [replace("pwdReset", ["TRUE"])])
        if step.done and not effective.must_change:
            step = StepOutcome(Step_MustChange(), False,
                               f"pwdReset was set, but the password policy "
                               f"({effective.dn or 'none'}) has no pwdMustChange: TRUE, so the "
                               "server does not make the user change the password")
        steps.append(step)
    changed_at = None
    try:
        entry = directory.read(user.dn, ["pwdChangedTime"])
        if entry is not None:
            changed_at = parse_generalized_time(entry.first("pwdChangedTime"))
    except Err:
        pass
    return SetOutcome(SetStatus.APPLIED, steps, changed_at)


# ---------------------------------------------------------------------------------------------
# test-connection


def test_connection() -> Report:
    settings = Settings()
    url = config.get("url") or "the configured url"
    bind_dn = config.get("bind_dn") or "the service account"
    checks = []
    name = "connect and bind as the service account"
    try:
        directory = Directory()
    except Err as error:
        checks.append(Check(name, CheckStatus.FAILED, message_of(error.value),
                            "check url, ca_file, bind_dn and the bind_password secret"))
        return Report(checks)
    checks.append(Check(name, CheckStatus.OK, f"connected to {url} and bound as {bind_dn}", None))

    name = "base_dn readable"
    try:
        entry = directory.read(settings.base_dn, ["objectClass"])
        if entry is not None:
            checks.append(Check(name, CheckStatus.OK, f"base_dn {settings.base_dn} exists", None))
        else:
            checks.append(Check(name, CheckStatus.FAILED,
                                f"base_dn {settings.base_dn} does not exist or cannot be read by "
                                f"{bind_dn}",
                                "correct base_dn, or grant the service account read access to it"))
    except Err as error:
        checks.append(Check(name, CheckStatus.FAILED, message_of(error.value),
                            "run the test again; if it persists, check the server"))

    name = "default password policy readable"
    if settings.policy_dn is None:
        checks.append(Check(name, CheckStatus.WARNING,
                            "no policy_dn is configured: users without a pwdPolicySubentry are "
                            "reported as having no password policy",
                            "set policy_dn to the DN in the server's ppolicy_default"))
    else:
        try:
            entry = directory.read(settings.policy_dn, POLICY_ATTRIBUTES)
        except Err:
            entry = None
        if entry is not None and entry.first("pwdAttribute") is not None:
            policy = policy_from_entry(entry, "the default policy_dn").policy
            checks.append(Check(name, CheckStatus.OK,
                                f"{settings.policy_dn}: min length {policy.min_length}, history "
                                f"{policy.history_length}, min age {policy.min_age_seconds} s",
                                None))
        else:
            checks.append(Check(name, CheckStatus.FAILED,
                                f"{settings.policy_dn} cannot be read as a pwdPolicy entry by the "
                                "service account",
                                f"check policy_dn, and grant the service account read access to "
                                f"{settings.policy_dn}"))
    return Report(checks)


# ---------------------------------------------------------------------------------------------
# The export


class Connector(exports.Connector):
    def describe(self) -> Info:
        return Info(
            id=ID,
            version=VERSION,
            name="OpenLDAP (ppolicy, Python)",
            description=(
                "A custom directory on OpenLDAP with the ppolicy overlay, over LDAPS or StartTLS, "
                "written in Python: finds people (inetOrgPerson) under a base DN by uid, cn and "
                "mail, reads the pwdPolicy that applies to each, and resets passwords as a service "
                "account (with unlock and \"must change at next logon\" through pwdReset). "
                "Refusals come back as ppolicy's own reasons. User changes are not supported."),
            supports=Features.SET_PASSWORD | Features.POLICY | Features.IMPORT | Features.VERIFY,
            config_schema=CONFIG_SCHEMA,
            secrets_schema=SECRETS_SCHEMA,
        )

    def test_connection(self) -> Report:
        return test_connection()

    def find_accounts(self, query: AccountQuery, cursor: Optional[str], limit: int) -> AccountPage:
        return find(query, cursor, limit)

    def get_policy(self, account: Account) -> PasswordPolicy:
        directory, settings, user = open_and_resolve(account)
        return effective_policy(directory, settings, user).policy

    def check_password(self, account: Account, candidate: str) -> None:
        try:
            directory, settings, user = open_and_resolve(account)
            effective = effective_policy(directory, settings, user)
        except Err as error:
            raise Err([Violation_RejectedByDirectory(
                "the password policy could not be read, so the password was not checked: "
                + message_of(error.value))])
        found = violations(candidate, effective, user)
        if found:
            raise Err(found)

    def set_password(self, account: Account, password: str, options: SetOptions) -> SetOutcome:
        return set_password(account, password, options)

    def change_password(self, account: Account, old: str, new: str) -> SetOutcome:
        raise Err(ConnectorError_Unsupported(info(
            "the Python OpenLDAP connector does not change passwords for users; an "
            "administrator's reset (set-password) is the way")))

    def password_changed_at(self, account: Account) -> Optional[int]:
        _, _, user = open_and_resolve(account)
        return user.changed_at
