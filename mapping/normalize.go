package mapping

// Normalisation and hashing of Meta's customer-information keys.
//
// The rules are those of facebook/capi-param-builder (nodejs/src/piiUtil:
// commonUtil.js, emailUtil.js, phoneUtil.js, stringUtil.js, dobUtil.js,
// genderUtil.js, zipCodeUtil.js, piiUtil.js), the normaliser Meta's newest
// SDKs use, so that our hashes equal the ones Meta computes from the same
// raw data. Where the JavaScript and PHP ports differ (whitespace set,
// case mapping) the JavaScript one is followed. Deviations: the first two
// are the **Decision**s of shared/docs/meta-capi.md, the others ours.
//   - ph: never keep a "+" (the reference keeps none either);
//   - zp: also remove every space ("SW1A 1AA" → "sw1a1aa");
//   - a value is "already hashed" only when it is 64 hex characters
//     (SHA-256); the reference also passes 32-hex MD5 strings through
//     unhashed, which Meta cannot match for CAPI, so we normalise them;
//   - the literal "__undef__" (how the reference vectors spell JavaScript's
//     undefined) is treated as a missing value for every key.
//
// Everything here is a pure function of its input except the upper bound of
// a year of birth: see maxDOBYear.

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"
)

// HashedKeys are the user_data keys whose values are normalised and hashed.
var HashedKeys = [...]string{"em", "ph", "fn", "ln", "ge", "db", "ct", "st", "zp", "country", "external_id"}

// DropError says why a value was dropped. Reason is one of the constant
// strings below and never contains the value: values are PII and errors end
// up in logs and metric labels.
type DropError struct{ Key, Reason string }

func (e *DropError) Error() string { return "dropped " + e.Key + ": " + e.Reason }

// Drop reasons: a small fixed set, safe as metric labels.
const (
	reasonEmpty       = "empty"
	reasonUnknownKey  = "not a hashed key"
	reasonEmail       = "invalid email"
	reasonPhone       = "invalid phone"
	reasonName        = "invalid name"
	reasonGender      = "unknown gender"
	reasonDOB         = "invalid date of birth"
	reasonCity        = "invalid city"
	reasonState       = "invalid state"
	reasonCountry     = "invalid country"
	reasonZip         = "invalid zip"
	reasonExternalID  = "invalid external_id"
	reasonLeadID      = "invalid lead_id"
	reasonFbc         = "invalid fbc"
	normUndefSentinel = "__undef__"
)

// maxDOBYear returns the latest acceptable year of birth. The reference
// allows up to "current year + 1"; reading the clock is confined to this
// package-level hook so that tests can pin it (the normalisers themselves
// stay pure) and so a process spanning New Year needs no restart. UTC, so
// that the answer does not depend on the host's time zone.
var maxDOBYear = func() int { return time.Now().UTC().Year() + 1 }

// normBufSize is the stack buffer for a normalised value; longer values
// spill to the heap, which is correct, only slower.
const normBufSize = 128

type normKind uint8

const (
	kindNone normKind = iota
	kindEmail
	kindPhone
	kindName
	kindGender
	kindDOB
	kindCity
	kindState
	kindZip
	kindCountry
	kindExternalID
)

func normKindOf(key string) normKind {
	switch key {
	case "em":
		return kindEmail
	case "ph":
		return kindPhone
	case "fn", "ln":
		return kindName
	case "ge":
		return kindGender
	case "db":
		return kindDOB
	case "ct":
		return kindCity
	case "st":
		return kindState
	case "zp":
		return kindZip
	case "country":
		return kindCountry
	case "external_id":
		return kindExternalID
	}
	return kindNone
}

// NormalizeField returns the normalised value of v for a hashed Meta key, or
// a *DropError. A value that is already a SHA-256 hash (64 hex characters
// after trimming) is returned lowercased: it must not be hashed again.
func NormalizeField(key, v string) (string, error) {
	var buf [normBufSize]byte
	out, _, reason := normalizeInto(buf[:0], key, v)
	if reason != "" {
		return "", &DropError{Key: key, Reason: reason}
	}
	if string(out) == v { // already normal: no copy
		return v, nil
	}
	return string(out), nil
}

// HashField returns what goes on the wire: v lowercased if it is already
// SHA-256 hex, else the lower-case hex SHA-256 of NormalizeField(key, v).
func HashField(key, v string) (string, error) {
	var buf [normBufSize]byte
	out, hashed, reason := normalizeInto(buf[:0], key, v)
	if reason != "" {
		return "", &DropError{Key: key, Reason: reason}
	}
	if hashed {
		return string(out), nil
	}
	sum := sha256.Sum256(out)
	var hx [2 * sha256.Size]byte
	hex.Encode(hx[:], sum[:])
	return string(hx[:]), nil
}

// IsSHA256Hex reports whether s is 64 hex characters (either case).
func IsSHA256Hex(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// normalizeInto appends the normalised value to dst. hashed is true when v
// was already a SHA-256 hash (then the result is that hash lowercased).
// reason is "" on success. Normalisers are called directly (not through
// func values) so that dst can stay on the caller's stack.
func normalizeInto(dst []byte, key, v string) (out []byte, hashed bool, reason string) {
	kind := normKindOf(key)
	if kind == kindNone {
		return dst, false, reasonUnknownKey
	}
	t := jsTrim(v)
	if t == "" || t == normUndefSentinel {
		return dst, false, reasonEmpty
	}
	// The reference checks the trimmed value before any normalisation
	// (piiUtil.js getNormalizedAndHashedPII).
	if IsSHA256Hex(t) {
		for i := 0; i < len(t); i++ {
			dst = append(dst, asciiLower(t[i]))
		}
		return dst, true, ""
	}
	switch kind {
	case kindEmail:
		out, reason = normEmail(dst, t)
	case kindPhone:
		out, reason = normPhone(dst, t)
	case kindName:
		out, reason = normName(dst, t)
	case kindGender:
		out, reason = normGender(dst, t)
	case kindDOB:
		out, reason = normDOB(dst, t)
	case kindCity:
		out, reason = normCity(dst, t)
	case kindState:
		out, reason = normTwoLetter(dst, t, &normStates, reasonState)
	case kindCountry:
		out, reason = normTwoLetter(dst, t, &normCountries, reasonCountry)
	case kindZip:
		out, reason = normZip(dst, t)
	case kindExternalID:
		out, reason = normExternalID(dst, t)
	}
	return out, false, reason
}

// Every normaliser below gets the value already trimmed of JavaScript
// whitespace; where the reference trims later (after lower-casing or
// splitting) the result is the same, as lower-casing neither creates nor
// removes whitespace.

// normEmail: lower-case, trim, then emailUtil.js's EMAIL_RE.
func normEmail(dst []byte, t string) ([]byte, string) {
	start := len(dst)
	dst = appendJSLower(dst, t, nil)
	if !validEmail(dst[start:]) {
		return dst[:start], reasonEmail
	}
	return dst, ""
}

// validEmail matches emailUtil.js's "good approximation of RFC 2822":
//
//	^[\w!#$%&'*+/=?^`{|}~-]+(:?\.[\w!#$%&'*+/=?^`{|}~-]+)*
//	@(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$
//
// with a loop instead of a regexp. The "(:?" is the reference's own typo
// (an optional ':' before each '.'); it is reproduced so that hashes match.
// Input is lower-case already; anything non-ASCII fails.
func validEmail(s []byte) bool {
	at := -1
	for i, c := range s {
		if c == '@' {
			at = i
			break
		}
	}
	if at <= 0 {
		return false
	}
	// Local part: atoms separated by "." or ":.".
	seg := 0
	for i := 0; i < at; i++ {
		c := s[i]
		switch {
		case emailAtom[c]:
			seg++
		case c == '.':
			if seg == 0 {
				return false
			}
			seg = 0
		case c == ':':
			if seg == 0 || i+1 >= at || s[i+1] != '.' {
				return false
			}
			seg = 0
			i++
		default:
			return false
		}
	}
	if seg == 0 {
		return false
	}
	// Domain: two or more labels of [a-z0-9-], not starting or ending
	// with '-'.
	labels, n := 0, 0
	dom := s[at+1:]
	for i, c := range dom {
		switch {
		case 'a' <= c && c <= 'z' || '0' <= c && c <= '9':
			n++
		case c == '-':
			if n == 0 {
				return false
			}
			n++
		case c == '.':
			if n == 0 || dom[i-1] == '-' {
				return false
			}
			labels++
			n = 0
		default:
			return false
		}
	}
	return n > 0 && dom[len(dom)-1] != '-' && labels >= 1
}

// emailAtom is [\w!#$%&'*+/=?^`{|}~-], the local-part characters.
var emailAtom = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "_!#$%&'*+/=?^`{|}~-" {
		t[c] = true
	}
	return t
}()

// normPhone keeps ASCII digits only and strips leading zeros
// (phoneUtil.js). No length check and no country-code guessing: the value
// must already carry its country code. Never a '+' (Decision).
func normPhone(dst []byte, t string) ([]byte, string) {
	start := len(dst)
	for i := 0; i < len(t); i++ {
		c := t[i]
		if '0' <= c && c <= '9' && (c != '0' || len(dst) > start) {
			dst = append(dst, c)
		}
	}
	if len(dst) == start {
		return dst, reasonPhone
	}
	return dst, ""
}

// normName removes whitespace and ASCII punctuation, then lower-cases;
// digits and non-ASCII letters stay (stringUtil.js getNormalizedName with
// commonUtil.js STRIP_WHITESPACE_AND_PUNCTUATION_REGEX).
func normName(dst []byte, t string) ([]byte, string) {
	start := len(dst)
	dst = appendJSLower(dst, t, isNameStripped)
	if len(dst) == start {
		return dst, reasonName
	}
	return dst, ""
}

// isNameStripped is the reference's [!"#$%&'()*+,\-./:;<=>?@ [\\\]^_`{|}~\s].
func isNameStripped(r rune) bool {
	if r < utf8.RuneSelf {
		return asciiPunct[r] || isJSSpace(r)
	}
	return isJSSpace(r)
}

var asciiPunct = func() (t [128]bool) {
	for _, c := range "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~" {
		t[c] = true
	}
	return t
}()

// normGender: lower-case, trim, then an exact word from the lists.
func normGender(dst []byte, t string) ([]byte, string) {
	// The longest word is 10 bytes and lower-casing shrinks a rune to at
	// most a third of its bytes (KELVIN SIGN → "k"), so longer input
	// cannot match.
	if len(t) > 32 {
		return dst, reasonGender
	}
	var sc [96]byte
	w := appendJSLower(sc[:0], t, nil)
	code, ok := normGenderIndex[string(w)]
	if !ok {
		return dst, reasonGender
	}
	return append(dst, code...), ""
}

// normDOB parses digit groups (dobUtil.js): with three or more groups the
// first three are read as year-month-day when the first is > 31, as
// day-year-month when the second is > 31, else as month/day/year (US order
// when ambiguous), swapping month and day when the "month" is > 12; the
// year must be in 1800..maxDOBYear(),
// month 1..12, day 1..31 (no per-month calendar check, as in the
// reference: 29/02/1900 passes). A single group of exactly 8 digits passes
// as is.
func normDOB(dst []byte, t string) ([]byte, string) {
	var n [3]int
	groups, firstStart, firstEnd := 0, 0, 0
	for i := 0; i < len(t); {
		if !isDigit(t[i]) {
			i++
			continue
		}
		j, v := i, 0
		for ; j < len(t) && isDigit(t[j]); j++ {
			if v < 1e9 { // saturate: only comparisons with 12, 31 and years matter
				v = v*10 + int(t[j]-'0')
			}
		}
		if groups < 3 {
			n[groups] = v
		}
		if groups == 0 {
			firstStart, firstEnd = i, j
		}
		groups++
		i = j
	}
	if groups >= 3 {
		if y, m, d, ok := ymdFromNumbers(n[0], n[1], n[2]); ok {
			dst = appendPadded(dst, y, 4)
			dst = appendPadded(dst, m, 2)
			return appendPadded(dst, d, 2), ""
		}
	}
	if groups == 1 && firstEnd-firstStart == 8 {
		return append(dst, t[firstStart:firstEnd]...), ""
	}
	return dst, reasonDOB
}

func ymdFromNumbers(n1, n2, n3 int) (y, m, d int, ok bool) {
	switch {
	case n1 > 31:
		y = n1
		m, d = n2, n3
		if n2 > 12 {
			m, d = n3, n2
		}
	case n2 > 31:
		y = n2
		m, d = n3, n1
		if n3 > 12 {
			m, d = n1, n3
		}
	default:
		y = n3
		m, d = n1, n2
		if n1 > 12 {
			m, d = n2, n1
		}
	}
	ok = y >= 1800 && y <= maxDOBYear() && m >= 1 && m <= 12 && d >= 1 && d <= 31
	return y, m, d, ok
}

func appendPadded(dst []byte, v, width int) []byte {
	var b [20]byte
	s := strconv.AppendInt(b[:0], int64(v), 10)
	for i := len(s); i < width; i++ {
		dst = append(dst, '0')
	}
	return append(dst, s...)
}

// normCity keeps [a-zA-Z0-9] only, lower-cased, and must start with a
// letter (stringUtil.js getNormalizedCity: "San José" → "sanjos").
func normCity(dst []byte, t string) ([]byte, string) {
	start := len(dst)
	for i := 0; i < len(t); i++ {
		c := t[i]
		if 'a' <= c && c <= 'z' || '0' <= c && c <= '9' {
			dst = append(dst, c)
		} else if 'A' <= c && c <= 'Z' {
			dst = append(dst, c+'a'-'A')
		}
	}
	if len(dst) == start || !('a' <= dst[start] && dst[start] <= 'z') {
		return dst[:start], reasonCity
	}
	return dst, ""
}

// normTable is one of the name→code tables with its init-time indexes.
type normTable struct {
	ordered []normNameCode
	names   [][]byte // ordered[i].name as bytes, for the substring scan
	exact   map[string]string
}

func newNormTable(t []normNameCode, exact map[string]string) normTable {
	nt := normTable{ordered: t, names: make([][]byte, len(t)), exact: exact}
	for i, e := range t {
		nt.names[i] = []byte(e.name)
	}
	return nt
}

var (
	normStates    = newNormTable(normStateTable, normStateIndex)
	normCountries = newNormTable(normCountryTable, normCountryIndex)
)

// normTwoLetter is stringUtil.js normalizeTwoLetterAbbreviations: lower-case,
// keep [a-z]; a 2-letter value is kept; an exact name gives its code; else
// the code of the first name (in table order) contained in the value; else
// the letters themselves. Then the first two letters (one letter stays
// one). "Tex." → "te", "South-Dakota" → "sd", "InvalidCountry" → "in".
func normTwoLetter(dst []byte, t string, tab *normTable, reason string) ([]byte, string) {
	var sc [64]byte
	s := sc[:0]
	for i := 0; i < len(t); {
		c := t[i]
		if c < utf8.RuneSelf {
			i++
			if 'a' <= c && c <= 'z' {
				s = append(s, c)
			} else if 'A' <= c && c <= 'Z' {
				s = append(s, c+'a'-'A')
			}
			continue
		}
		r, size := utf8.DecodeRuneInString(t[i:])
		i += size
		// The only non-ASCII runes whose lower case contains an ASCII
		// letter (checked by a test): İ → "i̇", KELVIN SIGN → "k".
		switch r {
		case 'İ':
			s = append(s, 'i')
		case '\u212A':
			s = append(s, 'k')
		}
	}
	switch {
	case len(s) == 0:
		return dst, reason
	case len(s) == 2:
		return append(dst, s...), ""
	}
	if code, ok := tab.exact[string(s)]; ok {
		return append(dst, code...), ""
	}
	for i, name := range tab.names {
		if len(name) <= len(s) && bytesContains(s, name) {
			return append(dst, tab.ordered[i].code...), ""
		}
	}
	if len(s) > 2 {
		s = s[:2]
	}
	return append(dst, s...), ""
}

func bytesContains(s, sub []byte) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i] == sub[0] && string(s[i:i+len(sub)]) == string(sub) {
			return true
		}
	}
	return false
}

// normZip lower-cases, cuts at the first '-', trims (zipCodeUtil.js) and
// removes every remaining space (Decision), so "10001-0001" → "10001"
// (US ZIP+4 keeps its 5 digits), "SW1A 1AA" → "sw1a1aa". The result must
// be at least 2 characters, counted as JavaScript's length does (UTF-16
// code units, so one astral character counts 2; PHP's port counts code
// points: the two only differ on such nonsense values).
func normZip(dst []byte, t string) ([]byte, string) {
	var sc [64]byte
	l := appendJSLower(sc[:0], t, nil)
	for i, c := range l {
		if c == '-' {
			l = l[:i]
			break
		}
	}
	start, n := len(dst), 0
	for i := 0; i < len(l); {
		r, size := utf8.DecodeRune(l[i:])
		if !isJSSpace(r) {
			dst = append(dst, l[i:i+size]...)
			n++
			if r > 0xFFFF {
				n++
			}
		}
		i += size
	}
	if n < 2 {
		return dst[:start], reasonZip
	}
	return dst, ""
}

// normExternalID removes all whitespace and lower-cases
// (stringUtil.js getNormalizedExternalID): it must be formatted the same
// everywhere the advertiser sends it.
func normExternalID(dst []byte, t string) ([]byte, string) {
	start := len(dst)
	dst = appendJSLower(dst, t, isJSSpace)
	if len(dst) == start {
		return dst, reasonExternalID
	}
	return dst, ""
}

// ParseLeadID validates Meta's lead id: ASCII digits only (surrounding
// whitespace trimmed), 15–17 digits, no leading zero. 17 digits exceed
// 2^53, so it is parsed straight to int64, never through float64.
func ParseLeadID(v string) (int64, error) {
	t := jsTrim(v)
	if len(t) < 15 || len(t) > 17 || t[0] == '0' {
		return 0, &DropError{Key: "lead_id", Reason: reasonLeadID}
	}
	var n int64
	for i := 0; i < len(t); i++ {
		if !isDigit(t[i]) {
			return 0, &DropError{Key: "lead_id", Reason: reasonLeadID}
		}
		n = n*10 + int64(t[i]-'0') // ≤ 17 digits: cannot overflow
	}
	return n, nil
}

// CheckFbc checks the click-id shape fb.<subdomain index 0|1|2>.<creation
// time in ms, 13 digits>.<fbclid>, the fbclid being non-empty without
// whitespace or control characters. Meta's parameter builder may append a
// ".<appendix>" to the fbclid; that stays part of it. The value is
// case-sensitive and sent as given, so nothing is trimmed here.
func CheckFbc(v string) error {
	if !validFbc(v) {
		return &DropError{Key: "fbc", Reason: reasonFbc}
	}
	return nil
}

func validFbc(v string) bool {
	const head = len("fb.0.") + 13 + len(".")
	if len(v) <= head || v[:3] != "fb." || v[3] < '0' || v[3] > '2' || v[4] != '.' || v[head-1] != '.' {
		return false
	}
	for i := len("fb.0."); i < head-1; i++ {
		if !isDigit(v[i]) {
			return false
		}
	}
	for _, r := range v[head:] {
		if r <= ' ' || r == 0x7f || r == utf8.RuneError || isJSSpace(r) || unicode.IsSpace(r) || unicode.IsControl(r) {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func asciiLower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// isJSSpace is JavaScript's \s (WhiteSpace and LineTerminator), which is
// what the reference trims and strips. It differs from unicode.IsSpace:
// U+FEFF is a space, U+0085 is not.
func isJSSpace(r rune) bool {
	switch {
	case r == ' ' || '\t' <= r && r <= '\r':
		return true
	case r < 0x80:
		return false
	}
	switch r {
	case 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000, 0xFEFF:
		return true
	}
	return 0x2000 <= r && r <= 0x200A
}

// jsTrim is String.prototype.trim.
func jsTrim(s string) string {
	for len(s) > 0 {
		c := s[0]
		if c < utf8.RuneSelf {
			if !isJSSpace(rune(c)) {
				break
			}
			s = s[1:]
			continue
		}
		r, size := utf8.DecodeRuneInString(s)
		if !isJSSpace(r) {
			break
		}
		s = s[size:]
	}
	for len(s) > 0 {
		c := s[len(s)-1]
		if c < utf8.RuneSelf {
			if !isJSSpace(rune(c)) {
				break
			}
			s = s[:len(s)-1]
			continue
		}
		r, size := utf8.DecodeLastRuneInString(s)
		if !isJSSpace(r) {
			break
		}
		s = s[:len(s)-size]
	}
	return s
}

// appendJSLower appends s lower-cased the way JavaScript's
// String.prototype.toLowerCase does (full Unicode default case conversion),
// leaving out the runes for which drop reports true: the reference strips
// before lower-casing, so the context of a final sigma is the stripped
// string. Go's strings.ToLower differs on exactly two points, both handled
// here: U+0130 (İ) becomes "i̇" (i + U+0307), and Σ at the end of a word
// becomes ς.
func appendJSLower(dst []byte, s string, drop func(rune) bool) []byte {
	start := len(dst)
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			i++
			if drop != nil && drop(rune(c)) {
				continue
			}
			dst = append(dst, asciiLower(c))
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if drop != nil && drop(r) {
			continue
		}
		switch r {
		case 'İ':
			dst = append(dst, "i\u0307"...)
		case 'Σ':
			if isFinalSigma(dst[start:], s[i:], drop) {
				dst = utf8.AppendRune(dst, 'ς')
			} else {
				dst = utf8.AppendRune(dst, 'σ')
			}
		default:
			dst = utf8.AppendRune(dst, unicode.ToLower(r))
		}
	}
	return dst
}

// isFinalSigma is Unicode's Final_Sigma condition: a cased letter before
// (skipping case-ignorable runes) and none after.
func isFinalSigma(before []byte, after string, drop func(rune) bool) bool {
	cased := false
	for b := before; len(b) > 0; {
		r, size := utf8.DecodeLastRune(b)
		b = b[:len(b)-size]
		if isCaseIgnorable(r) {
			continue
		}
		cased = isCased(r)
		break
	}
	if !cased {
		return false
	}
	for _, r := range after {
		if (drop != nil && drop(r)) || isCaseIgnorable(r) {
			continue
		}
		return !isCased(r)
	}
	return true
}

func isCased(r rune) bool {
	return unicode.IsUpper(r) || unicode.IsLower(r) || unicode.IsTitle(r) ||
		unicode.In(r, unicode.Other_Lowercase, unicode.Other_Uppercase)
}

// isCaseIgnorable approximates Unicode's Case_Ignorable: Mn, Me, Cf, Lm, Sk
// and the word-break MidLetter, MidNumLet and Single_Quote characters.
func isCaseIgnorable(r rune) bool {
	switch r {
	case '\'', '.', ':', 0xB7, 0x387, 0x55F, 0x5F4, 0x2018, 0x2019, 0x2024, 0x2027,
		0xFE13, 0xFE52, 0xFE55, 0xFF07, 0xFF0E, 0xFF1A:
		return true
	}
	return unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.Lm, unicode.Sk)
}
