"""The reference numerics: tte's integer semantics (:mod:`.semantics`) and the float32 primitives whose
order of operations the C runtime follows (:mod:`.numerics`).  Each op's reference kernel lives with the
op (:mod:`tte.ops`); graphs run with :mod:`tte.ir.executor`."""
