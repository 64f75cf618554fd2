// TensorBoard's entry point for the perfdoctor tab: TensorBoard imports this module into the
// tab's frame (whose base is this plugin's route) and calls render(); the tab is the viewer's
// own page, served by the plugin from the perfdoctor package.
export async function render() {
  window.location.replace("./index.html");
}
