/* wxsite, every page: clear WeChat's #wechat_redirect from the address bar after a login,
 * and let forms ask before they send. */
(function () {
  "use strict";
  // The authorization URL ends in #wechat_redirect and browsers keep a fragment across the
  // redirects back to the site, so the page a login lands on would show (and share) it.
  // The JS-SDK signs the URL without its fragment, so replacing it changes no signature.
  if (location.hash === "#wechat_redirect" && window.history && history.replaceState) {
    history.replaceState(history.state, "", location.pathname + location.search);
  }
})();

/* A form with data-confirm="问题" asks first, in the page (a WeUI-like dialog, not
 * the browser's confirm(), which WeChat titles with the site's address). The dialog's
 * button says data-confirm-ok (default 确定); 取消 or a tap outside keeps the form unsent.
 * Delegated from document, so forms a script adds later ask too. */
(function () {
  "use strict";
  var dialog = null;
  var pending = null;

  function build() {
    var mask = document.createElement("div");
    mask.className = "dialog-mask";
    mask.id = "confirm-dialog";
    mask.hidden = true;
    mask.innerHTML =
      '<div class="dialog" role="alertdialog" aria-modal="true" aria-labelledby="confirm-text">' +
      '<p class="dialog-body" id="confirm-text"></p>' +
      '<div class="dialog-ft">' +
      '<button type="button" class="dialog-btn" id="confirm-cancel">取消</button>' +
      '<button type="button" class="dialog-btn dialog-btn-warn" id="confirm-ok">确定</button>' +
      "</div></div>";
    document.body.appendChild(mask);
    mask.addEventListener("click", function (event) {
      if (event.target === mask) { close(); }
    });
    mask.querySelector("#confirm-cancel").addEventListener("click", close);
    mask.querySelector("#confirm-ok").addEventListener("click", function () {
      var form = pending;
      close();
      if (form) {
        form.dataset.confirmed = "1";
        // requestSubmit keeps the submitter's name/value; submit() is the fallback.
        if (form.requestSubmit) { form.requestSubmit(); } else { form.submit(); }
      }
    });
    return mask;
  }

  function close() {
    pending = null;
    if (dialog) { dialog.hidden = true; }
  }

  function ask(form) {
    dialog = dialog || build();
    pending = form;
    dialog.querySelector("#confirm-text").textContent = form.dataset.confirm;
    dialog.querySelector("#confirm-ok").textContent = form.dataset.confirmOk || "确定";
    dialog.hidden = false;
    dialog.querySelector("#confirm-cancel").focus();
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form || !form.dataset || !form.dataset.confirm) { return; }
    if (form.dataset.confirmed) { delete form.dataset.confirmed; return; }
    event.preventDefault();
    ask(form);
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && dialog && !dialog.hidden) { close(); }
  });
})();

/* <button data-copy="#id">: copy that element's text (a page's link), and say so. WeChat's
 * browser has no Clipboard API on http pages, so a selected hidden field is the fallback. */
(function () {
  "use strict";
  function fallback(text) {
    var field = document.createElement("textarea");
    field.value = text;
    field.setAttribute("readonly", "");
    field.className = "offscreen";
    document.body.appendChild(field);
    field.select();
    field.setSelectionRange(0, text.length);
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    field.remove();
    return ok ? Promise.resolve() : Promise.reject();
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-copy]") : null;
    if (!button) { return; }
    var source = document.querySelector(button.dataset.copy);
    if (!source) { return; }
    var text = source.textContent.trim();
    var label = button.dataset.label || button.textContent;
    button.dataset.label = label;
    var copied = navigator.clipboard && window.isSecureContext
      ? navigator.clipboard.writeText(text).catch(function () { return fallback(text); })
      : fallback(text);
    copied.then(function () { button.textContent = "已复制"; }, function () {
      button.textContent = "请长按上方链接复制";
      var range = document.createRange();
      range.selectNodeContents(source);
      var selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
    }).then(function () {
      window.setTimeout(function () { button.textContent = label; }, 2000);
    });
  });
})();
