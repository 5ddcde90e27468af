// Package logs is the vocabulary every part of logengine shares: the log
// event, its levels, and what a search, a statistics or a histogram request
// asks for and gets back. It knows nothing of HTTP, Kafka or SQL, and
// imports no other logengine package, so the write side, the read side, the
// store and the cache can all depend on it.
package logs

import (
	"fmt"
	"strings"
)

// Level is a log level. Its numeric value is its storage code (TRACE = 0 …
// FATAL = 5), ordered by severity; its text form is the upper-case name.
// Only ParseLevel and UnmarshalText make one from outside input, so a Level
// that reaches the store is already known to be valid.
type Level uint8

// The levels the API accepts, from least to most severe.
const (
	LevelTrace Level = iota
	LevelDebug
	LevelInfo
	LevelWarn
	LevelError
	LevelFatal
)

// NumLevels is how many levels there are; codes run from 0 to NumLevels-1.
const NumLevels = 6

var levelNames = [NumLevels]string{"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"}

// AllLevels lists every level in severity order.
func AllLevels() []Level {
	return []Level{LevelTrace, LevelDebug, LevelInfo, LevelWarn, LevelError, LevelFatal}
}

// LevelNames is the list of accepted names, for error messages.
const LevelNames = "TRACE, DEBUG, INFO, WARN, ERROR, FATAL"

// ParseLevel accepts a level in any case; WARNING is an alias of WARN.
func ParseLevel(s string) (Level, bool) {
	up := strings.ToUpper(strings.TrimSpace(s))
	if up == "WARNING" {
		return LevelWarn, true
	}
	for i, n := range levelNames {
		if n == up {
			return Level(i), true
		}
	}
	return 0, false
}

// LevelFromCode is the level of a storage code, for reading rows back.
func LevelFromCode(c int16) (Level, error) {
	if c < 0 || c >= NumLevels {
		return 0, fmt.Errorf("unknown level code %d", c)
	}
	return Level(c), nil
}

// Valid reports whether l is one of the six levels.
func (l Level) Valid() bool { return l < NumLevels }

// Code is the level's storage form.
func (l Level) Code() int16 { return int16(l) }

// String is the upper-case name.
func (l Level) String() string {
	if !l.Valid() {
		return fmt.Sprintf("Level(%d)", uint8(l))
	}
	return levelNames[l]
}

// MarshalText writes the name, so JSON values and map keys read "INFO".
func (l Level) MarshalText() ([]byte, error) {
	if !l.Valid() {
		return nil, fmt.Errorf("unknown level code %d", uint8(l))
	}
	return []byte(levelNames[l]), nil
}

// UnmarshalText takes a name exactly as MarshalText writes it; use
// ParseLevel for the lenient forms a client may send.
func (l *Level) UnmarshalText(b []byte) error {
	for i, n := range levelNames {
		if n == string(b) {
			*l = Level(i)
			return nil
		}
	}
	return fmt.Errorf("unknown level %q", b)
}
