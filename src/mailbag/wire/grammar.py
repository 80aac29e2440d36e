"""The IMAP command grammar, RFC 9051 §6 and §9 ("command", "command-any",
"command-auth", "command-nonauth", "command-select", "uid"), with the forms
of RFC 3501 (LSUB, RFC822.*, NEW/OLD/RECENT) and the extensions listed in
wire/commands.py: ENABLE (RFC 5161), SASL-IR (RFC 4959), CONDSTORE/QRESYNC
(RFC 7162), LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819), SPECIAL-USE
CREATE (RFC 6154 §3), MULTIAPPEND (RFC 3502), CATENATE (RFC 4469), SORT/THREAD (RFC 5256, RFC 5957),
ESORT and CONTEXT (RFC 5267; in wire/sort_grammar.py), BINARY (RFC 3516), ESEARCH
(RFC 4731), SEARCHRES (RFC 5182), UIDPLUS (RFC 4315), MOVE (RFC 6851),
UNSELECT (RFC 3691), ID (RFC 2971), IDLE (RFC 2177), GETQUOTA/GETQUOTAROOT/
SETQUOTA (RFC 9208; in wire/quota_grammar.py).

``parse_command`` works on a framed command (see wire/lexer.py) and raises
ParseError for bad syntax or Incomplete when the command goes on in a literal
that has not arrived.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Literal

from mailbag.wire import commands as c
from mailbag.wire.dates import parse_datetime
from mailbag.wire.fetch_grammar import parse_fetch_items, parse_fetch_modifiers
from mailbag.wire.lexer import TAG_CHARS, ParseError, Reader
from mailbag.wire.notify_grammar import parse_notify
from mailbag.wire.quota_grammar import parse_getquota, parse_getquotaroot, parse_setquota
from mailbag.wire.search_grammar import SearchParser
from mailbag.wire.sort_grammar import (
    parse_cancelupdate,
    parse_catenate,
    parse_return_options,
    parse_sort,
    parse_thread,
)

STATUS_ITEMS = frozenset({
    "MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "DELETED", "SIZE", "RECENT",
    "HIGHESTMODSEQ", "APPENDLIMIT", "MAILBOXID", "DELETED-STORAGE",
})
LIST_SELECT_OPTIONS = frozenset({"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"})
LIST_RETURN_OPTIONS = frozenset({"SUBSCRIBED", "CHILDREN", "SPECIAL-USE", "STATUS"})
USE_ATTRIBUTES = {a.upper(): a for a in (
    "\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash",
)}
_LETTERS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_BASE64 = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")


def split_tag(first_segment: bytes) -> tuple[str | None, int]:
    """(tag, offset after it and its space) or (None, 0) when there is none."""
    p = 0
    n = len(first_segment)
    while p < n and first_segment[p] in TAG_CHARS:
        p += 1
    if p == 0 or (p < n and first_segment[p] != 0x20):
        return None, 0
    return first_segment[:p].decode("ascii"), p


class _Grammar:
    def __init__(self, r: Reader, tag: str, max_nesting: int) -> None:
        self.r = r
        self.tag = tag
        self.max_nesting = max_nesting

    # ---------------------------------------------------------------- entry
    def command(self) -> c.Command:
        r = self.r
        name = r.keyword("a command name")
        if name == "UID":
            r.sp("a space after UID")
            sub = r.keyword("a command after UID")
            uid_handler = self._UID.get(sub)
            if uid_handler is None:
                raise ParseError(f"Unknown command UID {sub}")
            return uid_handler(self, True)
        handler = self._COMMANDS.get(name)
        if handler is None:
            raise ParseError(f"Unknown command {name}")
        return handler(self, name)

    # ------------------------------------------------------------- no args
    def _no_args(self, name: str) -> c.Command:
        self.r.end(name)
        return _NO_ARGS[name](self.tag)

    # ----------------------------------------------------------- nonauth
    def authenticate(self, name: str) -> c.Command:
        r = self.r
        r.sp("a space before the SASL mechanism")
        mech = r.keyword("a SASL mechanism name")
        initial: bytes | None = None
        if not r.at_end():
            r.sp("a space before the initial response")
            token = r.take_while(_BASE64)
            if not token:
                raise r.fail("a base64 initial response or '='")
            if token == b"=":
                initial = b""
            else:
                try:
                    initial = base64.b64decode(token, validate=True)
                except (binascii.Error, ValueError):
                    raise ParseError("AUTHENTICATE: invalid base64 initial response") from None
        r.end(name)
        return c.Authenticate(self.tag, mech, initial)

    def login(self, name: str) -> c.Command:
        r = self.r
        r.sp("a space before the user name")
        user = r.astring("a user name")
        r.sp("a space before the password")
        password = r.astring("a password")
        r.end(name)
        return c.Login(self.tag, user, password)

    # --------------------------------------------------------------- auth
    def enable(self, name: str) -> c.Command:
        r = self.r
        caps: list[str] = []
        while not r.at_end():
            r.sp("a space before a capability")
            caps.append(r.keyword("a capability name"))
        if not caps:
            raise ParseError("ENABLE: missing capability names")
        return c.Enable(self.tag, tuple(caps))

    def select(self, name: str) -> c.Command:
        r = self.r
        r.sp("a space before the mailbox name")
        mailbox = r.mailbox()
        condstore = False
        qresync: c.QresyncParams | None = None
        if not r.at_end():
            r.sp("a space before SELECT parameters")
            r.expect(b"(", "'(' starting SELECT parameters")
            while True:
                param = r.keyword("a SELECT parameter")
                if param == "CONDSTORE":
                    condstore = True
                elif param == "QRESYNC":
                    r.sp("a space after QRESYNC")
                    qresync = self._qresync()
                else:
                    raise ParseError(f"{name}: unknown parameter {param}")
                if r.peek() != 0x20:
                    break
                r.pos += 1
            r.expect(b")", "')' closing SELECT parameters")
        r.end(name)
        return c.Select(self.tag, mailbox, name == "EXAMINE", condstore, qresync)

    def _qresync(self) -> c.QresyncParams:
        r = self.r
        r.expect(b"(", "'(' starting QRESYNC parameters")
        uidvalidity = r.number("the QRESYNC UIDVALIDITY", nonzero=True)
        r.sp("a space after the UIDVALIDITY")
        modseq = r.number("the QRESYNC mod-sequence", nonzero=True, wide=True)
        known: c.SequenceSet | None = None
        match: tuple[c.SequenceSet, c.SequenceSet] | None = None
        if r.peek() == 0x20 and r.peek(1) != 0x28:
            r.pos += 1
            known = r.sequence_set("the known UIDs")
        if r.peek() == 0x20:
            r.pos += 1
            r.expect(b"(", "'(' starting the sequence match data")
            seqs = r.sequence_set("the known sequence set")
            r.sp("a space before the known UID set")
            uids = r.sequence_set("the known UID set")
            r.expect(b")", "')' closing the sequence match data")
            match = (seqs, uids)
        r.expect(b")", "')' closing QRESYNC parameters")
        return c.QresyncParams(uidvalidity, modseq, known, match)

    def create(self, name: str) -> c.Command:
        r = self.r
        r.sp("a space before the mailbox name")
        mailbox = r.mailbox()
        uses: list[str] = []
        if not r.at_end():
            r.sp("a space before CREATE parameters")
            r.expect(b"(", "'(' starting CREATE parameters")
            while True:
                param = r.keyword("a CREATE parameter")
                if param != "USE":
                    raise ParseError(f"CREATE: unknown parameter {param}")
                r.sp("a space after USE")
                for flag in r.flag_list("'(' starting the USE list"):
                    uses.append(USE_ATTRIBUTES.get(flag.upper(), flag))
                if r.peek() != 0x20:
                    break
                r.pos += 1
            r.expect(b")", "')' closing CREATE parameters")
        r.end(name)
        return c.Create(self.tag, mailbox, tuple(uses))

    def _one_mailbox(self, name: str) -> str:
        self.r.sp("a space before the mailbox name")
        mailbox = self.r.mailbox()
        self.r.end(name)
        return mailbox

    def delete(self, name: str) -> c.Command:
        return c.Delete(self.tag, self._one_mailbox(name))

    def subscribe(self, name: str) -> c.Command:
        return c.Subscribe(self.tag, self._one_mailbox(name))

    def unsubscribe(self, name: str) -> c.Command:
        return c.Unsubscribe(self.tag, self._one_mailbox(name))

    def rename(self, name: str) -> c.Command:
        r = self.r
        r.sp("a space before the existing mailbox name")
        old = r.mailbox("the existing mailbox name")
        r.sp("a space before the new mailbox name")
        new = r.mailbox("the new mailbox name")
        r.end(name)
        return c.Rename(self.tag, old, new)

    def list_(self, name: str) -> c.Command:
        r = self.r
        r.sp("a space after LIST")
        extended = False
        selection: list[str] = []
        if r.peek() == 0x28:
            extended = True
            selection = r.paren_list("a LIST selection option")
            for opt in selection:
                if opt not in LIST_SELECT_OPTIONS:
                    raise ParseError(f"LIST: unknown selection option {opt}")
            if selection == ["RECURSIVEMATCH"] or (
                    "RECURSIVEMATCH" in selection and len(set(selection)) == 1):
                raise ParseError("LIST: RECURSIVEMATCH needs another selection option")
            r.sp("a space after the selection options")
        reference = r.mailbox("the LIST reference name")
        r.sp("a space before the mailbox pattern")
        patterns: list[str] = []
        if r.peek() == 0x28:
            extended = True
            r.pos += 1
            patterns.append(self._pattern())
            while r.peek() == 0x20:
                r.pos += 1
                patterns.append(self._pattern())
            r.expect(b")", "')' closing the pattern list")
        else:
            patterns.append(self._pattern())
        returns: list[str] = []
        status_items: list[str] = []
        if not r.at_end():
            extended = True
            r.sp("a space before RETURN")
            if r.keyword("RETURN") != "RETURN":
                raise ParseError("LIST: expected RETURN options")
            r.sp("a space after RETURN")
            r.expect(b"(", "'(' starting the RETURN options")
            while r.peek() != 0x29:
                opt = r.keyword("a LIST RETURN option")
                if opt not in LIST_RETURN_OPTIONS:
                    raise ParseError(f"LIST: unknown RETURN option {opt}")
                if opt == "STATUS":
                    r.sp("a space after STATUS")
                    status_items = self._status_items()
                elif opt not in returns:
                    returns.append(opt)
                if r.peek() != 0x20:
                    break
                r.pos += 1
            r.expect(b")", "')' closing the RETURN options")
        r.end(name)
        return c.List(self.tag, reference, tuple(patterns), tuple(dict.fromkeys(selection)),
                      tuple(returns), tuple(status_items), extended)

    def _pattern(self) -> str:
        return self.r.list_mailbox("a mailbox pattern").decode("utf-8", "surrogateescape")

    def lsub(self, name: str) -> c.Command:
        r = self.r
        r.sp("a space after LSUB")
        reference = r.mailbox("the LSUB reference name")
        r.sp("a space before the mailbox pattern")
        pattern = self._pattern()
        r.end(name)
        return c.Lsub(self.tag, reference, pattern)

    def _status_items(self) -> list[str]:
        items = self.r.paren_list("a STATUS item", allow_empty=False)
        for item in items:
            if item not in STATUS_ITEMS:
                raise ParseError(f"STATUS: unknown item {item}")
        return list(dict.fromkeys(items))

    def status(self, name: str) -> c.Command:
        r = self.r
        r.sp("a space before the mailbox name")
        mailbox = r.mailbox()
        r.sp("a space before the STATUS items")
        items = self._status_items()
        r.end(name)
        return c.Status(self.tag, mailbox, tuple(items))

    def append(self, name: str) -> c.Command:
        r = self.r
        r.sp("a space before the mailbox name")
        mailbox = r.mailbox()
        messages: list[c.AppendMessage] = []
        while True:
            r.sp("a space before the message")
            flags: tuple[str, ...] = ()
            when: datetime | None = None
            if r.peek() == 0x28:
                flags = r.flag_list("an APPEND flag list")
                r.sp("a space after the APPEND flags")
            if r.peek() == 0x22:
                text = r.quoted("an APPEND date-time")
                try:
                    when = parse_datetime(text)
                except ValueError as exc:
                    raise ParseError(f"APPEND: {exc}") from None
                r.sp("a space after the APPEND date-time")
            mark = r.mark()
            if r.take_while(_LETTERS).upper() == b"CATENATE":   # RFC 4469
                r.sp("a space after CATENATE")
                messages.append(c.AppendMessage(flags, when, b"", parts=parse_catenate(r)))
            else:
                r.reset(mark)
                if not r.is_literal():
                    raise r.fail("the message as a literal or CATENATE")
                data, binary = r.literal("the message literal", allow_binary=True)
                messages.append(c.AppendMessage(flags, when, data, binary))
            if r.at_end():
                break
        return c.Append(self.tag, mailbox, tuple(messages))

    # ------------------------------------------------------------- selected
    def expunge(self, name: str) -> c.Command:
        self.r.end(name)
        return c.Expunge(self.tag)

    def uid_expunge(self, uid: bool) -> c.Command:
        r = self.r
        r.sp("a space before the UID set")
        uids = r.sequence_set("a UID set")
        r.end("UID EXPUNGE")
        return c.Expunge(self.tag, uids)

    def search(self, uid: bool) -> c.Command:
        r = self.r
        returns: tuple[c.SearchReturn, ...] | None = None
        partial: c.PartialRange | None = None
        charset: str | None = None
        mark = r.mark()
        if r.peek() == 0x20:
            r.pos += 1
            word = r.take_while(_LETTERS)
            if word.upper() == b"RETURN" and r.peek() == 0x20:
                r.pos += 1
                returns, partial = parse_return_options(r, "SEARCH")
                mark = r.mark()
                if r.peek() == 0x20:
                    r.pos += 1
                    word = r.take_while(_LETTERS)
            if word.upper() == b"CHARSET" and r.peek() == 0x20:
                r.pos += 1
                charset = r.astring("a charset name").decode("ascii", "replace")
            else:
                r.reset(mark)
        key = SearchParser(r, self.max_nesting).keys()
        return c.Search(self.tag, uid, key, charset, returns, partial)

    def fetch(self, uid: bool) -> c.Command:
        r = self.r
        r.sp("a space before the sequence set")
        seqs = r.sequence_set()
        r.sp("a space before the FETCH items")
        items, macro = parse_fetch_items(r)
        modifiers = c.FetchModifiers()
        if not r.at_end():
            r.sp("a space before FETCH modifiers")
            modifiers = parse_fetch_modifiers(r, uid)
        r.end("FETCH")
        return c.Fetch(self.tag, uid, seqs, items, macro, modifiers)

    def store(self, uid: bool) -> c.Command:
        r = self.r
        r.sp("a space before the sequence set")
        seqs = r.sequence_set()
        r.sp("a space before the STORE item")
        unchangedsince: int | None = None
        if r.peek() == 0x28:
            r.pos += 1
            while True:
                mod = r.keyword("a STORE modifier")
                if mod != "UNCHANGEDSINCE":
                    raise ParseError(f"STORE: unknown modifier {mod}")
                r.sp("a space after UNCHANGEDSINCE")
                unchangedsince = r.number("a mod-sequence value", wide=True)
                if r.peek() != 0x20:
                    break
                r.pos += 1
            r.expect(b")", "')' closing STORE modifiers")
            r.sp("a space before the STORE item")
        mode: Literal["+", "-", ""] = ""
        if r.peek() == 0x2B:
            mode = "+"
            r.pos += 1
        elif r.peek() == 0x2D:
            mode = "-"
            r.pos += 1
        item = r.keyword("FLAGS, +FLAGS or -FLAGS")
        if item not in ("FLAGS", "FLAGS.SILENT"):
            raise ParseError(f"STORE: unknown item {mode}{item}")
        r.sp("a space before the flags")
        if r.peek() == 0x28:
            flags = r.flag_list()
        else:
            fl = [r.flag()]
            while r.peek() == 0x20:
                r.pos += 1
                fl.append(r.flag())
            flags = tuple(fl)
        r.end("STORE")
        return c.Store(self.tag, uid, seqs, mode, item == "FLAGS.SILENT", flags, unchangedsince)

    def _set_and_mailbox(self, what: str) -> tuple[c.SequenceSet, str]:
        r = self.r
        r.sp("a space before the sequence set")
        seqs = r.sequence_set()
        r.sp("a space before the mailbox name")
        mailbox = r.mailbox("the destination mailbox name")
        r.end(what)
        return seqs, mailbox

    def copy(self, uid: bool) -> c.Command:
        return c.Copy(self.tag, uid, *self._set_and_mailbox("COPY"))

    def move(self, uid: bool) -> c.Command:
        return c.Move(self.tag, uid, *self._set_and_mailbox("MOVE"))

    def id(self, name: str) -> c.Command:
        r = self.r
        r.sp("a space after ID")
        if r.peek() != 0x28:
            if r.take_while(frozenset(b"NILnil")).upper() != b"NIL":
                raise r.fail("'(' or NIL")
            r.end(name)
            return c.Id(self.tag, None)
        r.pos += 1
        params: list[tuple[str, str | None]] = []
        while r.peek() != 0x29:
            key = r.string("an ID field name").decode("utf-8", "surrogateescape")
            r.sp("a space after the ID field name")
            value = r.nstring("an ID field value")
            params.append((key, None if value is None else
                           value.decode("utf-8", "surrogateescape")))
            if r.peek() != 0x20:
                break
            r.pos += 1
        r.expect(b")", "')' closing the ID list")
        r.end(name)
        return c.Id(self.tag, tuple(params))

    def sort(self, uid: bool) -> c.Command:
        return parse_sort(self.r, self.tag, uid, self.max_nesting)

    def thread(self, uid: bool) -> c.Command:
        return parse_thread(self.r, self.tag, uid, self.max_nesting)

    def compress(self, name: str) -> c.Command:
        r = self.r
        r.sp("a space before the compression mechanism")
        mechanism = r.keyword("a compression mechanism")
        r.end(name)
        return c.Compress(self.tag, mechanism)

    def cancelupdate(self, name: str) -> c.Command:
        return parse_cancelupdate(self.r, self.tag)

    def getquota(self, name: str) -> c.Command:
        return parse_getquota(self.r, self.tag)

    def getquotaroot(self, name: str) -> c.Command:
        return parse_getquotaroot(self.r, self.tag)

    def setquota(self, name: str) -> c.Command:
        return parse_setquota(self.r, self.tag)

    def notify(self, name: str) -> c.Command:
        return parse_notify(self.r, self.tag)

    _COMMANDS: dict[str, Callable[[_Grammar, str], c.Command]] = {}
    _UID: dict[str, Callable[[_Grammar, bool], c.Command]] = {}


_NO_ARGS: dict[str, Callable[[str], c.Command]] = {
    "CAPABILITY": c.Capability, "NOOP": c.Noop, "LOGOUT": c.Logout,
    "STARTTLS": c.StartTLS, "NAMESPACE": c.Namespace, "IDLE": c.Idle,
    "CHECK": c.Check, "CLOSE": c.Close, "UNSELECT": c.Unselect,
}


def _as_plain(handler: Callable[[_Grammar, bool], c.Command]) -> Callable[
        [_Grammar, str], c.Command]:
    def plain(g: _Grammar, name: str) -> c.Command:
        return handler(g, False)
    return plain


_Grammar._COMMANDS = {
    **{name: _Grammar._no_args for name in _NO_ARGS},
    "AUTHENTICATE": _Grammar.authenticate, "LOGIN": _Grammar.login,
    "ENABLE": _Grammar.enable, "SELECT": _Grammar.select, "EXAMINE": _Grammar.select,
    "CREATE": _Grammar.create, "DELETE": _Grammar.delete, "RENAME": _Grammar.rename,
    "SUBSCRIBE": _Grammar.subscribe, "UNSUBSCRIBE": _Grammar.unsubscribe,
    "LIST": _Grammar.list_, "LSUB": _Grammar.lsub, "STATUS": _Grammar.status,
    "APPEND": _Grammar.append, "EXPUNGE": _Grammar.expunge, "ID": _Grammar.id,
    "SEARCH": _as_plain(_Grammar.search), "FETCH": _as_plain(_Grammar.fetch),
    "STORE": _as_plain(_Grammar.store), "COPY": _as_plain(_Grammar.copy),
    "MOVE": _as_plain(_Grammar.move),
    "SORT": _as_plain(_Grammar.sort), "THREAD": _as_plain(_Grammar.thread),
    "CANCELUPDATE": _Grammar.cancelupdate,
    "COMPRESS": _Grammar.compress,
    "GETQUOTA": _Grammar.getquota, "GETQUOTAROOT": _Grammar.getquotaroot,
    "SETQUOTA": _Grammar.setquota,
    "NOTIFY": _Grammar.notify,
}
_Grammar._UID = {
    "SEARCH": _Grammar.search, "FETCH": _Grammar.fetch, "STORE": _Grammar.store,
    "COPY": _Grammar.copy, "MOVE": _Grammar.move, "EXPUNGE": _Grammar.uid_expunge,
    "SORT": _Grammar.sort, "THREAD": _Grammar.thread,
}


def parse_command(segments: Sequence[bytes], literals: Sequence[bytes],
                  max_nesting: int) -> c.Command:
    """Parse one framed command. The tag must already be known valid."""
    tag, offset = split_tag(segments[0])
    if tag is None:
        raise ParseError("invalid or missing tag")
    r = Reader(segments, literals)
    r.pos = offset
    r.sp("a space after the tag")
    return _Grammar(r, tag, max_nesting).command()
