package otlp

// UnmarshalJSON is unmarshalJSON, for the fuzz test.
var UnmarshalJSON = unmarshalJSON
