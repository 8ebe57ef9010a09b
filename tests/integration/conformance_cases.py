"""Case data for test_conformance.py: the UTF-8 sequences of Markus Kuhn's
decoder stress test (UTF-8-test.txt) grouped as Autobahn's cases 6.5-6.23,
and helpers to tell where a byte string stops being valid UTF-8."""
# "kosme" in Greek, the stress test's opening sample.
KOSME = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"


def is_valid_utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def first_invalid_byte(b: bytes):
    """Index of the first byte after which no continuation can make b valid
    UTF-8 (where a fail-fast validator must reject), or None if b is valid
    or merely truncated (then only the end of the message makes it invalid).
    Follows RFC 3629 / Unicode table 3-7: the second byte of E0, ED, F0 and
    F4 sequences has a narrowed range; C0, C1 and F5-FF never occur."""
    i, n = 0, len(b)
    while i < n:
        c = b[i]
        if c < 0x80:
            i += 1
            continue
        if 0xC2 <= c <= 0xDF:
            need, lo, hi = 1, 0x80, 0xBF
        elif c == 0xE0:
            need, lo, hi = 2, 0xA0, 0xBF
        elif c == 0xED:
            need, lo, hi = 2, 0x80, 0x9F
        elif 0xE1 <= c <= 0xEF:
            need, lo, hi = 2, 0x80, 0xBF
        elif c == 0xF0:
            need, lo, hi = 3, 0x90, 0xBF
        elif 0xF1 <= c <= 0xF3:
            need, lo, hi = 3, 0x80, 0xBF
        elif c == 0xF4:
            need, lo, hi = 3, 0x80, 0x8F
        else:
            return i
        for j in range(1, need + 1):
            if i + j >= n:
                return None
            x = b[i + j]
            if not ((lo <= x <= hi) if j == 1 else (0x80 <= x <= 0xBF)):
                return i + j
        i += need + 1
    return None


def truncated_utf8(b: bytes) -> bool:
    """True if b has no invalid byte but ends inside a code point."""
    return first_invalid_byte(b) is None and not is_valid_utf8(b)


def _utf8_groups():
    """[(title, [(valid, payload), ...]), ...] in Autobahn's order 6.5 ..."""
    g = []
    g.append(("Some valid UTF-8 sequences", [
        (True, b"hello\x24world"), (True, b"hello\xc2\xa2world"),
        (True, b"hello\xe2\x82\xacworld"), (True, b"hello\xf0\xa4\xad\xa2world"),
        (True, KOSME)]))
    g.append(("All prefixes of a valid UTF-8 string with multi-byte code points",
              [(is_valid_utf8(KOSME[:i]), KOSME[:i]) for i in range(1, len(KOSME) + 1)]))
    g.append(("First possible sequence of a certain length", [
        (True, b"\x00"), (True, b"\xc2\x80"), (True, b"\xe0\xa0\x80"), (True, b"\xf0\x90\x80\x80")]))
    g.append(("First possible sequence length 5/6 (invalid code points)", [
        (False, b"\xf8\x88\x80\x80\x80"), (False, b"\xfc\x84\x80\x80\x80\x80")]))
    g.append(("Last possible sequence of a certain length", [
        (True, b"\x7f"), (True, b"\xdf\xbf"), (True, b"\xef\xbf\xbf"), (True, b"\xf4\x8f\xbf\xbf")]))
    g.append(("Last possible sequence length 4/5/6 (invalid code points)", [
        (False, b"\xf7\xbf\xbf\xbf"), (False, b"\xfb\xbf\xbf\xbf\xbf"), (False, b"\xfd\xbf\xbf\xbf\xbf\xbf")]))
    g.append(("Other boundary conditions", [
        (True, b"\xed\x9f\xbf"), (True, b"\xee\x80\x80"), (True, b"\xef\xbf\xbd"),
        (True, b"\xf4\x8f\xbf\xbf"), (False, b"\xf4\x90\x80\x80")]))
    g.append(("Unexpected continuation bytes", [
        (False, b"\x80"), (False, b"\xbf"), (False, b"\x80\xbf"), (False, b"\x80\xbf\x80"),
        (False, b"\x80\xbf\x80\xbf"), (False, b"\x80\xbf\x80\xbf\x80"),
        (False, b"\x80\xbf\x80\xbf\x80\xbf"), (False, bytes(range(0x80, 0xbf)))]))
    lonely = []
    for lo, hi in [(0xc0, 0xdf), (0xe0, 0xef), (0xf0, 0xf7), (0xf8, 0xfb), (0xfc, 0xfd)]:
        lonely.append((False, b"".join(bytes([c, 0x20]) for c in range(lo, hi))))
    g.append(("Lonely start characters", lonely))
    k = [b"\xc0", b"\xe0\x80", b"\xf0\x80\x80", b"\xf8\x80\x80\x80", b"\xfc\x80\x80\x80\x80",
         b"\xdf", b"\xef\xbf", b"\xf7\xbf\xbf", b"\xfb\xbf\xbf\xbf", b"\xfd\xbf\xbf\xbf\xbf"]
    g.append(("Sequences with last continuation byte missing", [(False, x) for x in k]))
    g.append(("Concatenation of incomplete sequences", [(False, b"".join(k))]))
    g.append(("Impossible bytes", [(False, b"\xfe"), (False, b"\xff"), (False, b"\xfe\xfe\xff\xff")]))
    g.append(("Examples of an overlong ASCII character", [
        (False, b"\xc0\xaf"), (False, b"\xe0\x80\xaf"), (False, b"\xf0\x80\x80\xaf"),
        (False, b"\xf8\x80\x80\x80\xaf"), (False, b"\xfc\x80\x80\x80\x80\xaf")]))
    g.append(("Maximum overlong sequences", [
        (False, b"\xc1\xbf"), (False, b"\xe0\x9f\xbf"), (False, b"\xf0\x8f\xbf\xbf"),
        (False, b"\xf8\x87\xbf\xbf\xbf"), (False, b"\xfc\x83\xbf\xbf\xbf\xbf")]))
    g.append(("Overlong representation of the NUL character", [
        (False, b"\xc0\x80"), (False, b"\xe0\x80\x80"), (False, b"\xf0\x80\x80\x80"),
        (False, b"\xf8\x80\x80\x80\x80"), (False, b"\xfc\x80\x80\x80\x80\x80")]))
    g.append(("Single UTF-16 surrogates", [(False, x) for x in [
        b"\xed\xa0\x80", b"\xed\xad\xbf", b"\xed\xae\x80", b"\xed\xaf\xbf",
        b"\xed\xb0\x80", b"\xed\xbe\x80", b"\xed\xbf\xbf"]]))
    g.append(("Paired UTF-16 surrogates", [(False, x) for x in [
        b"\xed\xa0\x80\xed\xb0\x80", b"\xed\xa0\x80\xed\xbf\xbf", b"\xed\xad\xbf\xed\xb0\x80",
        b"\xed\xad\xbf\xed\xbf\xbf", b"\xed\xae\x80\xed\xb0\x80", b"\xed\xae\x80\xed\xbf\xbf",
        b"\xed\xaf\xbf\xed\xb0\x80", b"\xed\xaf\xbf\xed\xbf\xbf"]]))
    nonchars = [(True, b"\xef\xbf\xbe"), (True, b"\xef\xbf\xbf")]
    for z1 in b"\xf0\xf1\xf2\xf3\xf4":
        for z2 in b"\x8f\x9f\xaf\xbf":
            if z1 == 0xf4 and z2 != 0x8f:
                continue  # above U+10FFFF
            for z3 in b"\xbe\xbf":
                zz = bytes([z1, z2, 0xbf, z3])
                if zz not in (b"\xf0\x8f\xbf\xbe", b"\xf0\x8f\xbf\xbf"):  # overlong
                    nonchars.append((True, zz))
    g.append(("Non-character code points (valid UTF-8)", nonchars))
    g.append(("Unicode specials (i.e. replacement char)", [(True, bytes([0xef, 0xbf, c])) for c in range(0xb9, 0xc0)]))
    return g


def utf8_cases():
    """[(case_id, valid, payload)] numbered like Autobahn: 6.5.1 ... 6.23.7.
    Validity is re-checked against Python's decoder so a typo here cannot
    turn into a wrong expectation."""
    out = []
    for gi, (_title, seqs) in enumerate(_utf8_groups(), start=5):
        for si, (valid, payload) in enumerate(seqs, start=1):
            assert valid == is_valid_utf8(payload), (gi, si, payload)
            assert valid == (first_invalid_byte(payload) is None and not truncated_utf8(payload))
            out.append((f"6.{gi}.{si}", valid, payload))
    return out


UTF8_CASES = utf8_cases()
