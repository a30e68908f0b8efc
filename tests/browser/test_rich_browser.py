"""Rich output from procs in a real JupyterLab, in headless Chromium (fixtures: conftest.py,
helpers: labdriver.py): bundles render inside each proc's widget, in their place among its
lines, through JupyterLab's rendermime, untrusted (sanitised HTML, no script runs)."""

from __future__ import annotations

from .labdriver import ARTIFACTS, Notebook, wait_for
from .test_widgets_browser import LOAD, assert_rendered, problems_in

PAYLOAD = (
    '<b class="rich-bold">bold from a proc</b>'
    "<script>window.__ipylogfwd_script_ran = true</script>"
    '<img class="rich-img" src="data:," onerror="window.__ipylogfwd_onerror_ran = true">'
)

RICH_CELL = f"""%%procs 2
from IPython.display import display, HTML
import matplotlib.pyplot as plt
print('before')
display(HTML({PAYLOAD!r}))
print('between')
plt.plot([1, 3, 2])
plt.show()
print('after')
class Table:
    def _repr_html_(self):
        return '<table class="rich-table"><tr><td>a table</td></tr></table>'
Table()
"""

# Each widget's body, in DOM order: lines by their text, bundles as <kind:mime type rendered>.
SEQUENCE_JS = """(i) => {
  const c = window.jupyterapp.shell.currentWidget.content.widgets[i];
  const out = {};
  for (const p of c.node.querySelectorAll('.ipylogfwd-proc[data-rank]')) {
    out[p.dataset.rank] = [...p.querySelectorAll('.ipylogfwd-line, .ipylogfwd-display')].map(el =>
      el.classList.contains('ipylogfwd-display') ? `<${el.dataset.kind}:${el.dataset.mime}>` : el.textContent);
  }
  return out;
}"""

EXPECTED = ["before", "<display:text/html>", "between", "<display:image/png>", "after", "<result:text/html>"]


def test_rich_output_renders_in_each_procs_widget_in_place_and_no_script_runs(nb, lab):
    path = lab.write_notebook("rich.ipynb", [LOAD, RICH_CELL, "%logflush"])
    n: Notebook = nb(path)
    n.run_cell(0)
    n.run_cell(1)
    n.wait_procs(1, 2)
    n.run_cell(2)
    assert_rendered(n.output_text(2), range(2))
    # "rendered" means in the DOM, bundles rendered: read it at once, no waiting.
    sequence = n.page.evaluate(SEQUENCE_JS, 1)
    assert sequence == {"0": EXPECTED, "1": EXPECTED}, sequence
    out = n.output(1)
    for r in range(2):
        proc = n.proc(1, r)
        bold = proc.locator('.ipylogfwd-display[data-mime="text/html"] b.rich-bold')
        assert bold.count() == 1 and bold.inner_text() == "bold from a proc"
        assert bold.is_visible()
        table = proc.locator('.ipylogfwd-display[data-kind="result"] table.rich-table')
        assert table.count() == 1 and table.inner_text().strip() == "a table"
        assert proc.locator('.ipylogfwd-display[data-kind="result"] .ipylogfwd-out').inner_text() == "Out:"
        figure = proc.locator('.ipylogfwd-display[data-mime="image/png"] img')
        assert figure.count() == 1
        wait_for(
            n.page,
            "(img) => img.complete && img.naturalWidth > 100 && img.naturalHeight > 100",
            f"rank {r}'s figure to load as an image (naturalWidth and naturalHeight over 100 px)",
            arg=figure.element_handle(),
            timeout=10_000,
        )
        assert figure.get_attribute("src").startswith("data:image/png;base64,")
    # The sanitiser: the script element is gone and never ran; the event handler was stripped.
    assert out.locator("script").count() == 0
    assert out.locator("img.rich-img").count() == 2  # the image stays, without its handler
    assert out.locator("[onerror]").count() == 0
    assert n.page.evaluate("() => typeof window.__ipylogfwd_script_ran") == "undefined"
    assert n.page.evaluate("() => typeof window.__ipylogfwd_onerror_ran") == "undefined"
    # Nothing went to the cell's own output as text (the "<IPython.core.display.HTML object>").
    assert "IPython.core.display" not in n.output_text(1)
    assert problems_in(n.outputs_json()) == []
    assert n.page.page_errors == []
    n.screenshot(n.proc(1, 0), "rich-widget.png")
    assert (ARTIFACTS / "rich-widget.png").stat().st_size > 0
