# Tarea 2 "Back to training": every target sets up the virtual environment it needs.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# nbgrader starts `alembic` and the kernel (`python`) from PATH.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: demo test release grade bench bench-referencia lab venv clean sandbox navegador devolver publicar informe

venv: $(STAMP)

# $(call apt_tool,command,package,why): install a system package where we can (root on
# Debian/Ubuntu); elsewhere say how, and go on.
define apt_tool
	@command -v $(1) >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "instalando $(2) ($(3))..."; \
	    apt-get install -y -qq $(2) >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq $(2); }; \
	  else \
	    echo "aviso: falta $(2) ($(1)); instálalo con: sudo apt-get install $(2)"; \
	  fi; }
endef

# Student code runs inside bubblewrap; without it grading refuses (unless TrustedExecute.require_sandbox = False).
sandbox:
	$(call apt_tool,bwrap,bubblewrap,aislamiento del código de los estudiantes)

# The browser tests (formgrader and feedback pages) drive the system Chromium through Playwright.
navegador:
	$(call apt_tool,chromium,chromium,pruebas en un navegador real)

$(STAMP): requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -c "import site, sys; open(site.getsitepackages()[0] + '/tarea2_course.pth', 'w').write(sys.argv[1] + '\n')" "$(CURDIR)"
	touch $@

demo: $(STAMP) sandbox
	$(PY) -m tarea2_grader demo

test: $(STAMP) sandbox navegador
	$(PY) -m pytest -q tests

# The fast lane: every test not marked slow (no nbgrader run, no whole notebook graded), under 2 minutes.
.PHONY: test-rapido
test-rapido: $(STAMP) sandbox
	$(PY) -m pytest -q -m "not slow" tests

release: $(STAMP)
	$(PY) -m tarea2_grader release

# What students get, checked for leaks: publicado/ (make publicar REPO_PUBLICO=usuario/repo fills the Colab link).
publicar: $(STAMP)
	$(PY) -m tarea2_grader publicar $(if $(REPO_PUBLICO),--repo $(REPO_PUBLICO))

grade: $(STAMP) sandbox
	$(PY) -m tarea2_grader grade

# Feedback zip and grading worksheet for Moodle, in devolucion/ (after make grade, or make demo).
devolver: $(STAMP)
	$(PY) -m tarea2_grader devolver

# Course report for the teaching team in informe/ (after make grade, or make demo); UMBRAL=0.6 changes the
# similarity from which a pair of submissions is flagged.
informe: $(STAMP)
	$(PY) -m tarea2_grader informe $(if $(UMBRAL),--umbral $(UMBRAL))

# The whole job: a synthetic class of 300 graded with 1 and 2 workers and with stock nbgrader
# (15-40 min on a 2-core machine, by CPU, mostly stock nbgrader); e.g. make bench BENCH_ARGS="--alumnos 60 --muestra 14".
# make bench BENCH_ARGS="--ab b9cea39": sandbox CPU per reference student, that commit against this tree (~10 min).
bench: $(STAMP) sandbox
	$(PY) -m tools.bench_clase $(BENCH_ARGS)

# The reference solution against torch.autograd / torch.optim (ratios, a few minutes).
bench-referencia: $(STAMP) sandbox
	$(PY) -m tools.bench $(BENCH_ARGS)

# JupyterLab with nbgrader's toolbar and formgrader, for editing source/ and grading by hand.
lab: $(STAMP)
	$(VENV)/bin/jupyter lab

clean:
	rm -rf demo_course veredictos devolucion informe gradebook.db submitted feedback .pytest_cache semillas.json semillas.json.lock
