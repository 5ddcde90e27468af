package syslog

// ReadFrame is readFrame, for the fuzz test.
var ReadFrame = readFrame
