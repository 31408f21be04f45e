"""Static review of the autograd ban: can the code a hidden test grades reach a machine-made derivative?

Students compute every gradient by hand.  A course's hidden tests only judge
outputs, so this package reads the submitted source and marks, for each hidden test, the
constructs that the code the test grades *can reach* and that differentiate without the student
writing the derivative: torch's autograd in either mode, ``torch.func``/functorch, torch's engine,
its backward kernels and private namespaces, symbolic or other automatic differentiation, and the
tools that reach them indirectly (dynamic code, dunder attributes, frames, processes, pickles,
unknown modules).

Reachability, not presence.  All top-level definitions of all code cells are collected first
(functions, classes, assignments, imports with their aliases, ``%%writefile`` modules, mutations
such as ``FFNN.backward = ...``), every binding of a name counting (a name rebound in several cells
reaches all of them).  From the roots of each test (the course's parts table, a
:class:`~tarea2_grader.engine.review.records.Parte` per test), every global name that reached
code loads is followed: other functions and classes, globals, decorators, default arguments, base
classes, module aliases (``ag.grad`` after ``import torch.autograd as ag`` is judged as
``torch.autograd.grad``, at the use and at the import).  What no root reaches (the student's own
check cells, the course's autograd checks in the given cells) is never marked.  Names that no cell
defines, and names defined dynamically (``exec``, ``globals()[...] = ...``), make reachability
impossible to tell: they give a notebook-level review note, which marks no part.

What is allowed is an allow-list (:mod:`.allowlist`: ``MODULOS_PERMITIDOS``, with ``PROHIBIDOS`` naming the
forbidden places inside allowed modules and the known dangerous modules): anything else is an
unknown module and is marked.

Nothing here runs, imports or compiles student code, nor imports torch: :mod:`ast` and IPython's
input transformer only (for ``%`` and ``!`` syntax).  Student text is hostile: a cell that cannot
be read is skipped with a note (the kernel could not have run it either), the traversal is
iterative (no recursion on deep nesting), and every fragment of student text in a message is
stripped of control characters and capped at ``records.LIMITE`` characters.

Modules, lowest first: :mod:`.records` (what a test grades, cells, marks, a review; safe text),
:mod:`.allowlist` (allowed and forbidden modules and attributes, judging a dotted name),
:mod:`.source` (reading cells, IPython syntax and line maps; iterative AST helpers),
:mod:`.units` (every top-level binding of the notebook), :mod:`.visitor` (the scoped walk of one
unit: its marks and the global names it loads), :mod:`.reach` (what each test's roots reach; the
entry points :func:`~.reach.revisar` and :func:`~.reach.revisar_nb`).
"""
