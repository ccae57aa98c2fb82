"""Foundation shared by every layer: the never-break-the-host guard, the redactor, the
JSON-safe value rules and the background batch worker. Nothing here imports the rest of the
package."""
