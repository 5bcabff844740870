// Command keyctl manages the API keys of the Chatbot Platform API.
package main

import (
	"os"

	"github.com/chatbotplatform/keyctl/commands"
)

func main() { os.Exit(commands.Main()) }
