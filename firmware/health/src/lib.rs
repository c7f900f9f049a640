//! LED health patterns for a node, as a pure tick-driven state machine.
#![no_std]
