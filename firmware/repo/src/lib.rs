//! apt and rpm repository metadata readers and subset selection.
