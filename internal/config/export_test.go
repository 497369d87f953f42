package config

// Parse lets the tests outside the package load a configuration from memory.
var Parse = parse
