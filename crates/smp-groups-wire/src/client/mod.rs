//! The client text protocol (client <-> agent): `corrId SP entity SP command` lines.
